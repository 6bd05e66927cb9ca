"""Writes scenario: a first sync against a 360Learning simulator enforcing 10 writes/s.

Alone, and with another integration (a second client in a thread) spending part of the same
company budget. Figures: successful writes per second over the pass, 429s, failed writes,
duplicate users. Both simulators run in this process; time is real (the limit is in seconds).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.common import NOW, SEED, TODAY, build_pass_context
from reconciler.config import load_settings
from reconciler.passes.progress import format_duration
from reconciler.passes.reconcile import run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator

WRITE_LIMIT = 10  # 360Learning: write calls per second per company


def bench_first_sync(
    size: int, folder: Path, *, other_writes_per_second: float = 0.0, ceiling: float = WRITE_LIMIT
) -> dict:
    hibob = HibobSimulator(generate_company(size, seed=SEED, today=TODAY), today=TODAY)
    learning = LearningSimulator(enforce_rate_limits=True, now=lambda: NOW)
    settings = load_settings(
        read_file=False,
        environ={
            "RECONCILER_HIBOB__BASE_URL": "http://hibob.bench/v1",
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_LEARNING__BASE_URL": "http://learning.bench",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": str(ceiling),
            "RECONCILER_STORE__PATH": str(folder / f"writes-{size}-{other_writes_per_second}.db"),
        },
    )
    ours: list[tuple[float, str, int]] = []

    def learning_handle(request: httpx.Request) -> httpx.Response:
        response = learning.handle(request)
        if request.method != "GET" and "oauth2" not in request.url.path:
            ours.append((time.perf_counter(), request.url.path, response.status_code))
        return response

    services = build_pass_context(
        settings,
        hibob_transport=httpx.MockTransport(hibob.handle),
        learning_transport=httpx.MockTransport(learning_handle),
    )
    other = _OtherIntegration(learning, other_writes_per_second)
    with other:
        started = time.perf_counter()
        result = run_pass(services, "incremental", now=NOW)
        wall = time.perf_counter() - started
    services.hibob.close()
    services.learning.close()
    ok = [at for at, _, status in ours if status < 300]
    creates = Counter(path for _, path, status in ours if status == 201)
    linked = {
        e.learning_user_id for e in services.store.load_snapshot().values() if e.learning_user_id
    }
    ours_in_360 = [
        u
        for mail, u in learning.users_by_mail().items()
        if mail not in ("owner@sandbox.test", "other-integration@acme.example")
    ]
    return {
        "scenario": "first-sync" if not other_writes_per_second else "first-sync-shared",
        "employees": size,
        "created": result.counts.get("create", 0),
        "writes_sent": len(ours),
        "writes_ok": len(ok),
        "wall_seconds": round(wall, 1),
        "ok_writes_per_second": round((len(ok) - 1) / (ok[-1] - ok[0]), 2) if len(ok) > 1 else 0,
        "our_429": sum(1 for *_, status in ours if status == 429),
        "failed_writes": sum(1 for *_, status in ours if status >= 400 and status != 429),
        "failed_employees": len(result.report.failures) if result.report else None,
        "users_created": creates.get("/api/v2/users", 0),
        # Every 360Learning user the pass made is linked to exactly one employee.
        "duplicate_users": len(ours_in_360) - len(linked),
        "other_writes_per_second": other_writes_per_second,
        "other_writes_ok": other.ok,
        "other_429": other.refused,
        "ceiling_writes_per_second": ceiling,
        "company_limit_per_second": WRITE_LIMIT,
        "writes_per_person": round(len(ok) / max(1, result.counts.get("create", 0)), 2),
        "predicted_20000": _predicted(20_000, ok, result.counts.get("create", 0)),
        "predicted_100000": _predicted(100_000, ok, result.counts.get("create", 0)),
        "outcome": result.outcome,
        "command": f"python -m bench --only writes --writes {size}",
        "description": f"first sync of {size} employees"
        + (
            f", another integration at {other_writes_per_second:g} writes/s"
            if other_writes_per_second
            else ", alone"
        ),
    }


def _predicted(people: int, ok: list[float], created: int) -> str:
    """A first sync of `people` at this run's writes per person and successful writes/s."""
    if len(ok) < 2 or not created:
        return "?"
    per_second = (len(ok) - 1) / (ok[-1] - ok[0])
    return format_duration(people * len(ok) / created / per_second)


class _OtherIntegration:
    """Another client of the same company: one PATCH every 1/rate seconds on its own user."""

    def __init__(self, learning: LearningSimulator, per_second: float) -> None:
        self.learning, self.per_second = learning, per_second
        self.ok = self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _OtherIntegration:
        if self.per_second > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with httpx.Client(
            transport=httpx.MockTransport(self.learning.handle), base_url="http://learning.bench"
        ) as client:
            self._send_until_stopped(client)

    def _send_until_stopped(self, client: httpx.Client) -> None:
        token = client.post(
            "/api/v2/oauth2/token",
            json={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
        ).json()["access_token"]
        user_id = self.learning.seed_user("other-integration@acme.example")
        headers = {"authorization": f"Bearer {token}", "360-api-version": "v2.0"}
        next_at = time.perf_counter()
        while not self._stop.is_set():
            status = client.patch(
                f"/api/v2/users/{user_id}", json={"job": "theirs"}, headers=headers
            ).status_code
            self.ok += status < 300
            self.refused += status == 429
            next_at += 1 / self.per_second
            self._stop.wait(max(0.0, next_at - time.perf_counter()))
