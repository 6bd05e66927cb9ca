"""Targeted scenario (issue 20, target 3): what one employee's pass costs against the size of
the store, at 1,000 and 100,000 employees.

A small company is synced for real (both simulators in this process, no rate limits); the
store is then padded with linked employees and their seen emails up to the population, as
a large company's store holds them. Each repeat changes the targeted employee's title in
Hibob and times `run_pass(..., "targeted")` (one Hibob read, one 360Learning read, one
PATCH): the median, in milliseconds. The Hibob read costs what it costs whatever the company
size, so what grows, if anything, is the store's share.
Usage: python -m bench.targeted POPULATION [POPULATION...]  (prints one JSON row each)
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import NOW, SEED, TODAY, build_pass_context, seed_linked_population
from reconciler.config import load_settings
from reconciler.passes.reconcile import run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator

REAL = 60


def _pad(db: Path, count: int) -> None:
    """Add `count` linked employees (and their seen emails) straight into the store."""
    import sqlite3

    conn = sqlite3.connect(db)
    state = conn.execute("SELECT state FROM employees WHERE state IS NOT NULL LIMIT 1").fetchone()
    raw = json.loads(state[0])
    raw["manager"] = None
    text = json.dumps(raw, sort_keys=True)
    at = NOW.isoformat(timespec="seconds")
    with conn:
        conn.executemany(
            "INSERT INTO employees (hibob_id, learning_user_id, email, state, failures,"
            " updated_at) VALUES (?, ?, ?, ?, 0, ?)",
            ((f"9{n:09d}", f"{n:024x}", f"pad{n}@pad.example", text, at) for n in range(count)),
        )
        conn.executemany(
            "INSERT INTO employee_emails (hibob_id, email, first_seen_at, last_seen_at,"
            " is_current) VALUES (?, ?, ?, ?, 1)",
            ((f"9{n:09d}", f"pad{n}@pad.example", at, at) for n in range(count)),
        )
    conn.close()


def bench_targeted(population: int, folder: Path, repeats: int = 15) -> dict:
    hibob = HibobSimulator(generate_company(REAL, seed=SEED, today=TODAY), today=TODAY)
    hibob.search_limit_per_minute = hibob.read_limit_per_minute = 10**9
    learning = LearningSimulator(enforce_rate_limits=False, now=lambda: NOW)
    db = folder / f"targeted-{population}.db"
    settings = load_settings(
        read_file=False,
        environ={
            "RECONCILER_HIBOB__BASE_URL": "http://hibob.bench/v1",
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_HIBOB__READS_PER_MINUTE": "1000000",
            "RECONCILER_LEARNING__BASE_URL": "http://learning.bench",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_LEARNING__MAX_READS_PER_SECOND": "1000000",
            "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": "1000000",
            "RECONCILER_STORE__PATH": str(db),
        },
    )
    services = build_pass_context(
        settings,
        hibob_transport=httpx.MockTransport(hibob.handle),
        learning_transport=httpx.MockTransport(learning.handle),
    )
    linked = seed_linked_population(services, learning)
    target = min(
        h for h, e in services.store.load_snapshot().items() if e.is_linked and e.is_active
    )
    _pad(db, population - linked)
    times = []
    for number in range(repeats):
        hibob.update_employee(target, **{"work.title": f"Title {number}"})
        started = time.perf_counter()
        result = run_pass(services, "targeted", now=NOW, employee=target)
        times.append(time.perf_counter() - started)
        if result.counts.get("update") != 1:
            raise RuntimeError(f"the targeted pass did not update: {result.counts}")
    services.close_clients()
    services.store.close()
    return {
        "scenario": "targeted",
        "employees": population,
        "repeats": repeats,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
        "command": f"python -m bench.targeted {population}",
    }


def main(argv: list[str] | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-targeted-") as folder:
        for population in (int(p) for p in (argv if argv is not None else sys.argv[1:])):
            print(json.dumps(bench_targeted(population, Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
