"""Run one command and print its wall time and peak RSS as JSON (the steady scenario's probe).

A child's ru_maxrss on Linux starts from its parent's resident size at exec, so the benchmark,
which holds a seeded simulator, starts each measured command through this small process.
Usage: python -m bench.measure OUTPUT_FILE COMMAND [ARG...]
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    output, argv = sys.argv[1], sys.argv[2:]
    with open(output, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "wall_seconds": wall,
                "peak_rss_kib": usage.ru_maxrss,
                "exit_code": os.waitstatus_to_exitcode(status),
            }
        )
    )


if __name__ == "__main__":
    main()
