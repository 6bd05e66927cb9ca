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
import json
import sys
import tempfile
import time
import resource
from pathlib import Path

import httpx

from reconciler.cli import build_services
from reconciler.config import load_settings
from reconciler.reconcile import Services, compute_pass_plan, run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.store import Store

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def build(size: int, folder: Path, *, enforce_limits: bool, writes_per_second: float
          ) -> tuple[Services, HibobSimulator, LearningSimulator]:
    hibob = HibobSimulator(generate_company(size, seed=11, today=TODAY), today=TODAY)
    hibob.search_limit_per_minute = 10**9
    learning = LearningSimulator(enforce_rate_limits=enforce_limits, now=lambda: NOW)
    settings = load_settings(read_file=False, environ={
        "RECONCILER_HIBOB__BASE_URL": "http://hibob.bench/v1",
        "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
        "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
        "RECONCILER_LEARNING__BASE_URL": "http://learning.bench",
        "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
        "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
        "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": str(writes_per_second),
        "RECONCILER_STORE__PATH": str(folder / f"bench-{size}.db"),
    })
    services = build_services(settings, hibob_transport=httpx.MockTransport(hibob.handle),
                              learning_transport=httpx.MockTransport(learning.handle))
    return services, hibob, learning


def seed_linked_population(services: Services, learning: LearningSimulator) -> int:
    """Make both sides look as after a first sync, without sending 100,000 creates."""
    plan = compute_pass_plan(services, "incremental", now=NOW)
    for action in plan.actions:
        attributes = {k: v for k, v in action.changes.items() if v is not None}
        user_id = learning.seed_user(attributes.pop("mail"), **attributes)
        services.store.save_applied(action.hibob_id, learning_user_id=user_id,
                                    email=action.email, state=action.state, at=NOW)
    return len(plan.actions)


def bench_steady(size: int, folder: Path) -> dict:
    services, hibob, learning = build(size, folder, enforce_limits=False,
                                      writes_per_second=10**6)
    linked = seed_linked_population(services, learning)
    hibob_calls, learning_calls = len(hibob.requests), len(learning.requests)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_pass(services, "incremental", now=NOW)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"scenario": "steady", "employees": size, "linked": linked,
            "planned_actions": len(result.plan.actions),
            "hibob_calls": len(hibob.requests) - hibob_calls,
            "learning_calls": len(learning.requests) - learning_calls,
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak / 2**20, 1),
            "note": "in-process simulators: time and memory include Hibob rendering the "
                    "whole company as JSON"}


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
