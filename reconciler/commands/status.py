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
    real = [p for p in passes if not p["dry_run"]]
    last = real[0] if real else None
    running = store.is_instance_running()
    service = store.load_service_state() if running else {}
    return {
        "database": store.path,
        "service_running": running,
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
