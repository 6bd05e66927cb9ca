"""What `status` reports: the last passes, held deactivations, quarantine, skipped employees
and pending hints (parked ones apart: they wait for the next full pass).

Called by the CLI only; reads the store, never an API. Never holds a secret. Rendering is in
`report`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reconciler.config import Settings
from reconciler.store.database import Store


def collect_status(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    passes = store.list_passes(10)
    running = store.is_instance_running()
    real = [p for p in passes if not p["dry_run"]]
    open_passes = [p for p in real if p["finished_at"] is None]
    for row in open_passes:  # still running, or killed before it could say so
        row["counts"] = store.journal_counts(row["id"])
        if not running:
            row["outcome"] = "interrupted"
    running_passes = open_passes if running else []
    last = next((p for p in real if p not in running_passes), None)
    service = store.load_service_state() if running else {}
    return {
        "database": store.path,
        "service_running": running,
        "running_passes": running_passes,
        "last_pass": last,
        "last_success_at": store.last_successful_pass_at(),
        "next_pass_at": service.get("next_incremental_at"),
        "next_full_resync_at": service.get("next_full_at"),
        "recent_passes": passes,
        "held_deactivations": store.list_held(),
        "quarantined": store.list_quarantined(now),
        "skipped": store.list_skipped(),
        "pending_hints": store.count_pending_hints(),
        "retrying_hints": [
            {
                "employee_id": h["hibob_id"],
                "attempts": h["attempts"],
                "next_attempt_at": h["next_attempt_at"],
                "last_error": h["last_error"],
            }
            for h in store.list_pending_hints()
            if h["attempts"]
        ],
        "parked_hints": [
            {
                "employee_id": h["hibob_id"],
                "attempts": h["attempts"],
                "parked_at": h["parked_at"],
                "last_error": h["last_error"],
            }
            for h in store.list_parked_hints()
        ],
        "pass_in_progress": json.loads(progress) if (progress := service.get("progress")) else None,
        "open_requests": store.list_open_requests(),
    }
