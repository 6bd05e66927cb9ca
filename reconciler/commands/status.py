"""What `status` reports: the last passes, held deactivations, quarantine, skipped employees
and pending hints (parked ones apart: they wait for the next full pass).

Called by the CLI only; reads the store, never an API. Never holds a secret. Rendering is in
`report`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from reconciler.config import Settings
from reconciler.core.vocabulary import PassOutcome
from reconciler.store.database import Store
from reconciler.store.records import PassRecord


def collect_status(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """`status --json`'s object: the store's records under the keys it has always shown."""
    running = store.is_instance_running()
    passes = [_with_progress(store, p, running) for p in store.list_passes(10)]
    real = [p for p in passes if not p.is_dry_run]
    running_passes = [p for p in real if p.finished_at is None] if running else []
    last = next((p for p in real if p not in running_passes), None)
    service = store.load_service_state() if running else {}
    return {
        "database": store.path,
        "service_running": running,
        "running_passes": [p.as_json() for p in running_passes],
        "last_pass": last.as_json() if last else None,
        "last_success_at": store.last_successful_pass_at(),
        "next_pass_at": service.get("next_incremental_at"),
        "next_full_resync_at": service.get("next_full_at"),
        "recent_passes": [p.as_json() for p in passes],
        "held_deactivations": [h.as_json() for h in store.list_held()],
        "quarantined": [q.as_json() for q in store.list_quarantined(now)],
        "skipped": [s.as_json() for s in store.list_skipped()],
        "pending_hints": store.count_pending_hints(),
        "retrying_hints": [
            {
                "employee_id": h.hibob_id,
                "attempts": h.attempts,
                "next_attempt_at": h.next_attempt_at,
                "last_error": h.last_error,
            }
            for h in store.list_pending_hints()
            if h.attempts
        ],
        "parked_hints": [
            {
                "employee_id": h.hibob_id,
                "attempts": h.attempts,
                "parked_at": h.parked_at,
                "last_error": h.last_error,
            }
            for h in store.list_parked_hints()
        ],
        "pass_in_progress": json.loads(progress) if (progress := service.get("progress")) else None,
        "open_requests": [
            {
                "id": r.id,
                "kind": r.kind,
                "requested_at": r.requested_at,
                "started_at": r.started_at,
            }
            for r in store.list_open_requests()
        ],
    }


def _with_progress(store: Store, row: PassRecord, is_running: bool) -> PassRecord:
    """A real pass not finished (still running, or killed before it could say so) with what its
    journal holds so far; "interrupted" when no service runs it."""
    if row.is_dry_run or row.finished_at is not None:
        return row
    outcome = row.outcome if is_running else PassOutcome.INTERRUPTED
    return replace(row, counts=store.journal_counts(row.id), outcome=outcome)
