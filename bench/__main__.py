"""`make bench`: measure product §4 on the bundled simulators and print a report.

Scenarios:
- steady: an incremental pass over an unchanged population (1 Hibob call, 0 360Learning calls),
  its wall time, CPU time and peak Python memory, at growing sizes;
- bulk: a first sync with the 360Learning simulator enforcing its 10 writes/s company limit:
  achieved writes per second and 429s provoked.
Usage: python -m bench [--sizes 1000,10000,100000] [--bulk 120] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from reconciler.config import load_settings
from reconciler.reconcile import read_and_plan, run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.wiring import Services, build_services

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
SEED = 11


def build(size: int, folder: Path, *, enforce_limits: bool, writes_per_second: float,
          hibob_url: str | None = None) -> tuple[Services, HibobSimulator | None,
                                                  LearningSimulator]:
    """Both simulators in process, or Hibob served from another process at `hibob_url`."""
    hibob = None
    if hibob_url is None:
        hibob = HibobSimulator(generate_company(size, seed=SEED, today=TODAY), today=TODAY)
        hibob.search_limit_per_minute = 10**9
    learning = LearningSimulator(enforce_rate_limits=enforce_limits, now=lambda: NOW)
    settings = load_settings(read_file=False, environ={
        "RECONCILER_HIBOB__BASE_URL": hibob_url or "http://hibob.bench/v1",
        "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
        "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
        "RECONCILER_LEARNING__BASE_URL": "http://learning.bench",
        "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
        "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
        "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": str(writes_per_second),
        "RECONCILER_STORE__PATH": str(folder / f"bench-{size}.db"),
    })
    hibob_transport = httpx.MockTransport(hibob.handle) if hibob else None
    services = build_services(settings, hibob_transport=hibob_transport,
                              learning_transport=httpx.MockTransport(learning.handle))
    return services, hibob, learning


def seed_linked_population(services: Services, learning: LearningSimulator) -> int:
    """Make both sides look as after a first sync, without sending 100,000 creates."""
    plan = read_and_plan(services, "incremental", now=NOW)
    for action in plan.actions:
        attributes = {k: v for k, v in action.changes.items() if v is not None}
        user_id = learning.seed_user(attributes.pop("mail"), **attributes)
        services.store.save_applied(action.hibob_id, learning_user_id=user_id,
                                    email=action.email, state=action.state, at=NOW)
    return len(plan.actions)


def bench_steady(size: int, folder: Path) -> dict:
    # Hibob runs in its own process: the figures below are the reconciler's (plus the small
    # in-process 360Learning simulator holding the seeded users).
    server = subprocess.Popen([sys.executable, "-m", "bench.hibob_server", str(size), str(SEED),
                               TODAY.isoformat()], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        services, _, learning = build(size, folder, enforce_limits=False,
                                      writes_per_second=10**6, hibob_url=url)
        linked = seed_linked_population(services, learning)
        learning_calls, hibob_calls = len(learning.requests), services.hibob.stats.calls
        gc.collect()
        rss_before = _rss_mib()
        with _PeakRss() as peak:
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_pass(services, "incremental", now=NOW)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return {"scenario": "steady", "employees": size, "linked": linked,
            "planned_actions": len(result.plan.actions),
            "hibob_calls": services.hibob.stats.calls - hibob_calls,
            "learning_calls": len(learning.requests) - learning_calls,
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "rss_mib_before_pass": rss_before, "peak_rss_mib_during_pass": peak.mib,
            "note": "Hibob simulator in another process, reached over loopback HTTP; "
                    "wall time includes it rendering the company"}


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * resource.getpagesize() / 2**20, 1)


class _PeakRss:
    """Samples this process's resident memory every 20 ms while the block runs."""

    def __enter__(self) -> _PeakRss:
        self.mib, self._done = _rss_mib(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.mib = max(self.mib, _rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.mib = max(self.mib, _rss_mib())


def bench_bulk(size: int, folder: Path) -> dict:
    services, _, learning = build(size, folder, enforce_limits=True, writes_per_second=8)
    wall = time.perf_counter()
    result = run_pass(services, "incremental", now=NOW)
    wall = time.perf_counter() - wall
    writes = [r for r in learning.requests if r[0] != "GET" and "oauth2" not in r[1]]
    return {"scenario": "bulk", "employees": size, "created": result.counts.get("create", 0),
            "writes": len(writes), "wall_seconds": round(wall, 1),
            "writes_per_second": round(len(writes) / wall, 2),
            "rate_limited_429": learning.rate_limited_count,
            "configured_writes_per_second": 8, "company_limit_per_second": 10}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--bulk", type=int, default=120, help="employees in the bulk scenario")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as folder:
        # Smallest first: peak RSS is process-wide, so each row is an upper bound.
        for size in sorted(int(s) for s in args.sizes.split(",") if s):
            rows.append(bench_steady(size, Path(folder)))
            print(json.dumps(rows[-1]), flush=True)
        if args.bulk:
            rows.append(bench_bulk(args.bulk, Path(folder)))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
