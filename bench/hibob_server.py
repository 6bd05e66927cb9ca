"""Serve a generated company's Hibob simulator on loopback from its own process, so the
benchmark's memory and CPU figures are the reconciler's alone. Prints the base URL, then
serves until its standard input closes.
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
        sys.stdin.read()


if __name__ == "__main__":
    main()
