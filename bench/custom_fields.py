"""What custom fields cost a full resync (issue 16): the calls and the time of
`sync --full` over a linked, unchanged population with three managed custom fields, beside the
same resync without custom fields, and the unchanged incremental pass (0 360Learning calls).

Both simulators through httpx.MockTransport, the 360Learning one enforcing its documented
limits, on a clock that moves only when the client's pacer sleeps: the time reported is what
the read pacer (`learning.max_reads_per_second`) imposes, without network latency.
Usage: python -m bench.custom_fields [--size 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import NOW, SEED, TODAY, build_pass_context, seed_linked_population
from reconciler.config import load_settings
from reconciler.core.custom_fields import custom_field_id, is_custom_key
from reconciler.passes.apply import PassHooks
from reconciler.passes.custom_fields import load_custom_fields
from reconciler.passes.progress import ProgressSnapshot, ProgressTracker
from reconciler.passes.reconcile import run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.store.database import Store

COST_CENTER, CONTRACT_END = "work.custom.field_1644932887286", "work.custom.field_1716448572063"
RULES = [
    {"name": "Cost center", "from": COST_CENTER, "map": {"CC 12": "CC-12", "CC-40": "CC-40"}},
    {"name": "Contract end date", "from": CONTRACT_END},
    {"name": "Contract type", "value": "Permanent"},
]


class _FakeTime:
    """Moves only when someone sleeps (the client's pacers and backoffs)."""

    def __init__(self) -> None:
        self.now, self._lock = 1000.0, threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


def measure(size: int, *, custom_fields: bool = True) -> dict[str, Any]:
    """One seeded, linked population of `size`; the unchanged incremental and full passes."""
    company = generate_company(size, seed=SEED, today=TODAY)
    hibob = HibobSimulator(company, today=TODAY)
    clock = _FakeTime()
    learning = LearningSimulator(clock=clock, sleep=clock.sleep, now=lambda: NOW)
    learning.add_custom_field("Cost center", authorized_values=["CC-12", "CC-40"])
    learning.add_custom_field("Contract end date", "date")
    learning.add_custom_field("Contract type", authorized_values=["Permanent", "Fixed term"])
    for number, hibob_id in enumerate(sorted(hibob.records)):
        hibob.update_employee(
            hibob_id,
            **{
                COST_CENTER: ("CC 12", "CC-40")[number % 2],
                CONTRACT_END: "2027-06-30" if number % 3 == 0 else None,
            },
        )
    with tempfile.TemporaryDirectory() as folder:
        environ = {
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_HIBOB__BASE_URL": "http://hibob.test/v1",
            "RECONCILER_LEARNING__BASE_URL": "http://learning.test",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_STORE__PATH": str(Path(folder) / "reconciler.db"),
        }
        if custom_fields:
            environ["RECONCILER_MAPPING__CUSTOM_FIELDS"] = json.dumps(RULES)
        settings = load_settings(environ=environ, read_file=False)
        services = build_pass_context(
            settings,
            hibob_transport=httpx.MockTransport(hibob.handle),
            learning_transport=httpx.MockTransport(learning.handle),
            store=Store(settings.store.path),
            sleep=clock.sleep,
            clock=clock,
        )
        seed_linked_population(services, learning)
        for hibob_id, entry in services.store.load_snapshot().items():  # as after a first sync
            if not entry.learning_user_id or entry.state is None:
                continue
            learning.add_external_id("hibob", entry.learning_user_id, hibob_id)
            for key, value in entry.state.attributes.items():
                if is_custom_key(key) and value:
                    learning.set_custom_value(entry.learning_user_id, custom_field_id(key), value)
        # As after a first real pass, which keeps the custom fields' definitions in the store.
        load_custom_fields(services.learning, services.store, settings, refresh=True, record=True)
        results = {"size": size, "custom_fields": custom_fields}
        for kind in ("incremental", "full"):
            before, started, wall = len(learning.requests), clock.now, time.monotonic()
            hibob_before = len(hibob.requests)
            tracker, quarter = ProgressTracker(monotonic=clock), {}
            tracker.listeners.append(lambda s, q=quarter: _note_quarter(s, clock, q))
            result = run_pass(services, kind, now=NOW, hooks=PassHooks(progress=tracker))
            calls = Counter(
                f"{method} {_shape(path)}" for method, path, _ in learning.requests[before:]
            )
            results[kind] = {
                "outcome": str(result.outcome),
                "actions": len(result.plan.actions),
                "calls": sum(calls.values()),
                "hibob_calls": len(hibob.requests) - hibob_before,
                "by_operation": dict(sorted(calls.items())),
                "paced_seconds": round(clock.now - started, 1),
                "cpu_wall_seconds": round(time.monotonic() - wall, 1),
            }
            if quarter:  # the ETA shown a quarter of the way through, against the paced end
                results[kind]["eta_at_25_percent_seconds"] = round(quarter["eta"], 1)
                results[kind]["actual_rest_after_25_percent_seconds"] = round(
                    clock.now - quarter["at"], 1
                )
        services.close_clients()
        return results


def _note_quarter(snapshot: ProgressSnapshot, clock: _FakeTime, quarter: dict[str, float]) -> None:
    """Keep the first ETA given once a quarter of the pass's longest phase is done."""
    if quarter or not snapshot.total or snapshot.total < 100 or snapshot.eta_seconds is None:
        return
    if snapshot.total / 4 <= snapshot.done < snapshot.total:
        quarter.update(at=clock.now, eta=snapshot.eta_seconds)


def _shape(path: str) -> str:
    parts = path.split("/")
    return "/".join("{id}" if len(p) == 24 else p for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.custom_fields")
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args(argv)
    for custom in (False, True):
        print(json.dumps(measure(args.size, custom_fields=custom), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
