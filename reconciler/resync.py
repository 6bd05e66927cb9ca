"""`reconciler resync`: ask the running service for a full pass and wait for its outcome, or
run the full pass here when no service holds the database.

Called by the CLI only. The request travels through the store (`resync_requests`), which the
service polls every second; nothing here talks to the service any other way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from reconciler.config import Settings
from reconciler.errors import InstanceLocked
from reconciler.reconcile import run_pass
from reconciler.report import print_result
from reconciler.store import Store
from reconciler.wiring import Services, build_services, now_utc

RESYNC_POLL_SECONDS = 0.5
RESYNC_TIMEOUT_SECONDS = 1800.0
RESYNC_EXIT_CODES = {"ok": 0, "held": 3}


def request_resync(settings: Settings, wait: bool, out: TextIO, *,
                   build: Callable[[Settings, Store], Services] | None = None,
                   sleep: Callable[[float], None] = time.sleep,
                   timeout_seconds: float = RESYNC_TIMEOUT_SECONDS) -> int:
    """`reconciler resync`: ask the running service for a full pass, or run it here."""
    store = Store(settings.store.path)
    try:
        store.acquire_instance_lock()
    except InstanceLocked:
        return _ask_service(store, wait, out, sleep, timeout_seconds)
    try:
        services = (build or _build)(settings, store)
        result = run_pass(services, "full", now=now_utc())
        print_result(result, out)
        return result.exit_code
    finally:
        store.close()


def _build(settings: Settings, store: Store) -> Services:
    return build_services(settings, store=store)


def _ask_service(store: Store, wait: bool, out: TextIO, sleep: Callable[[float], None],
                 timeout_seconds: float) -> int:
    request_id = store.request_resync(now_utc())
    _say(out, f"resync requested (request {request_id}): the running service starts it "
              "within seconds")
    if not wait:
        return 0
    polls, started = 0, False
    while polls * RESYNC_POLL_SECONDS < timeout_seconds:
        request = store.get_resync_request(request_id) or {}
        if request.get("finished_at"):
            return _print_request_outcome(store, request, out)
        if request.get("started_at") and not started:
            started = True
            _say(out, "full resync started")
        polls += 1
        if polls % 10 == 0 and not store.is_instance_running():
            request = store.get_resync_request(request_id) or {}
            if request.get("finished_at"):
                return _print_request_outcome(store, request, out)
            _say(out, "reconciler: the service stopped before finishing the resync; "
                      "run `reconciler resync` again")
            return 1
        if polls % 120 == 0:
            _say(out, f"still running ({int(polls * RESYNC_POLL_SECONDS)} s)")
        sleep(RESYNC_POLL_SECONDS)
    _say(out, f"reconciler: no outcome after {int(timeout_seconds)} s; the resync goes on in "
              "the service (see `reconciler status`)")
    return 1


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)


def _print_request_outcome(store: Store, request: dict, out: TextIO) -> int:
    outcome = request["outcome"] or "failed"
    if outcome == "cancelled":
        _say(out, "reconciler: the service stopped before the resync ran; "
                  "run `reconciler resync` again")
        return 1
    row = next((p for p in store.list_passes(50) if p["id"] == request["pass_id"]), None)
    counts = ", ".join(f"{k} {v}" for k, v in (row or {}).get("counts", {}).items())
    label = f"full pass {request['pass_id']}" if request["pass_id"] else "full resync"
    _say(out, f"{label}: {outcome} — {counts or 'nothing to do'}")
    if row and row.get("error"):
        _say(out, f"  error: {row['error']}")
    return RESYNC_EXIT_CODES.get(outcome, 1)
