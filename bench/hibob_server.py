"""Serve a generated company's Hibob simulator on loopback from its own process, so the
benchmark's memory and CPU figures are the measured client's alone. Prints the base URL, then
answers each line on standard input with the number of requests served so far, and exits when
standard input closes.
Usage: python -m bench.hibob_server SIZE SEED TODAY
"""

from __future__ import annotations

import datetime as dt
import sys

from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.server import serve


def main() -> None:
    size, seed, today = int(sys.argv[1]), int(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
    hibob = HibobSimulator(generate_company(size, seed=seed, today=today), today=today)
    hibob.search_limit_per_minute = 10**9
    with serve(hibob.handle) as server:
        print(f"{server.url}/v1", flush=True)
        for _ in sys.stdin:
            print(len(hibob.requests), flush=True)


if __name__ == "__main__":
    main()
