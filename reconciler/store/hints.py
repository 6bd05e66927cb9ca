"""Webhook hints, admin requests and the service's own state rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from reconciler.store.connection import Database
from reconciler.store.records import HintRecord, RequestRecord
from reconciler.store.schema import utc_text

# The start of the last successful full pass ('' when none): it read everyone, so a hint parked
# before it is covered.
_LAST_FULL_START = (
    "(SELECT COALESCE(MAX(started_at), '') FROM passes WHERE kind = 'full'"
    " AND is_dry_run = 0 AND outcome IN ('ok', 'held'))"
)


class HintTables(Database):
    # -- webhook hints ----------------------------------------------------------------------
    def save_hint(
        self,
        hibob_id: str,
        event_type: str | None,
        source: str | None,
        triggered_at: str | None,
        at: datetime,
    ) -> int:
        """Store a delivery as the employee's one open hint: a new row, or the open one
        (pending or parked) coalesced, its latest event kept and its deliveries counted; a
        replay of an event already served (same event and `triggered_at`) is counted on its
        done row. A replayed delivery therefore never adds a row, nor resets a retry schedule."""
        with self.transaction() as conn:
            if triggered_at is not None:  # a replay of an event already served: count it
                served = conn.execute(
                    "SELECT id FROM hints WHERE hibob_id = ? AND event_type IS ?"
                    " AND triggered_at = ? AND done_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                    (hibob_id, event_type, triggered_at),
                ).fetchone()
                if served:
                    conn.execute(
                        "UPDATE hints SET deliveries = deliveries + 1 WHERE id = ?", (served[0],)
                    )
                    return int(served[0])
            conn.execute(
                "INSERT INTO hints (hibob_id, event_type, source, triggered_at, received_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (hibob_id) WHERE done_at IS NULL DO UPDATE SET"
                " event_type = excluded.event_type, source = excluded.source,"
                " triggered_at = excluded.triggered_at, deliveries = deliveries + 1",
                (hibob_id, event_type, source, triggered_at, utc_text(at)),
            )
            row = conn.execute(
                "SELECT id FROM hints WHERE hibob_id = ? AND done_at IS NULL", (hibob_id,)
            ).fetchone()
            return int(row[0])

    def list_pending_hints(self, due_at: datetime | None = None) -> list[HintRecord]:
        """Hints not done yet; with `due_at`, only those whose next attempt is due by then."""
        due = "" if due_at is None else " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        rows = self._fetch(
            f"SELECT {_HINT_COLUMNS} FROM hints"
            f" WHERE done_at IS NULL AND parked_at IS NULL{due} ORDER BY id",
            () if due_at is None else (utc_text(due_at),),
        )
        return [_hint(row) for row in rows]

    def next_hint_attempt_at(self, after: datetime) -> datetime | None:
        """The earliest retry of a pending hint due after `after` (None: none waits)."""
        with self._lock:
            row = self.conn.execute(
                "SELECT MIN(next_attempt_at) FROM hints"
                " WHERE done_at IS NULL AND parked_at IS NULL AND next_attempt_at > ?",
                (utc_text(after),),
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def record_hint_attempts(
        self, hint_ids: Iterable[int], error: str | None, next_attempt_at: datetime
    ) -> None:
        """Count one failed attempt on each hint and when to try again."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE hints SET attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ? WHERE id = ?",
                [(error, utc_text(next_attempt_at), i) for i in hint_ids],
            )

    def count_pending_hints(self) -> int:
        with self._lock:
            return int(
                self.conn.execute(
                    "SELECT COUNT(*) FROM hints WHERE done_at IS NULL AND parked_at IS NULL"
                ).fetchone()[0]
            )

    def park_hints(self, hint_ids: Iterable[int], error: str | None, at: datetime) -> None:
        """Count one last failed attempt and stop retrying: the next full pass covers them."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE hints SET attempts = attempts + 1, last_error = ?, parked_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                [(error, utc_text(at), i) for i in hint_ids],
            )

    def list_parked_hints(self) -> list[HintRecord]:
        """Parked hints no successful full pass has started after (it would cover them)."""
        rows = self._fetch(
            f"SELECT {_HINT_COLUMNS} FROM hints WHERE done_at IS NULL AND parked_at IS NOT NULL"
            f" AND parked_at >= {_LAST_FULL_START} ORDER BY id"
        )
        return [_hint(row) for row in rows]

    def settle_parked_hints(self, at: datetime) -> int:
        """Mark done the parked hints a successful full pass started after; how many."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE hints SET done_at = ? WHERE done_at IS NULL AND parked_at IS NOT NULL"
                f" AND parked_at < {_LAST_FULL_START}",
                (utc_text(at),),
            )
            return cursor.rowcount

    def mark_hints_done(self, hints: Iterable[HintRecord], at: datetime) -> None:
        """Close hints as listed; one that received another delivery since it was listed (its
        employee changed again while the pass ran) stays pending to be served again."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE hints SET done_at = ? WHERE id = ? AND deliveries <= ?",
                [(utc_text(at), h.id, h.deliveries) for h in hints],
            )

    def prune_done_hints(self, before: datetime) -> int:
        """Delete hints done before `before` (`webhooks.retention_days`); how many."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM hints WHERE done_at IS NOT NULL AND done_at < ?", (utc_text(before),)
            )
            return cursor.rowcount

    # -- overlapping passes ----------------------------------------------------------------
    def claim_employee(self, hibob_id: str, pass_id: int) -> bool:
        """Let `pass_id` write to this employee unless a later pass already did (it read Hibob
        later, so its decision is newer). True when the write may go ahead."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO decisions (hibob_id, pass_id) VALUES (?, ?)"
                " ON CONFLICT(hibob_id) DO UPDATE SET pass_id = excluded.pass_id"
                " WHERE decisions.pass_id <= excluded.pass_id",
                (hibob_id, pass_id),
            )
            return cursor.rowcount > 0

    # -- what the running service publishes for `status` --------------------------------------
    def save_service_state(self, values: Mapping[str, str | None]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO service_state (key, value) VALUES (?, ?)",
                list(values.items()),
            )

    def load_service_state(self) -> dict[str, str | None]:
        with self._lock:
            rows = self.conn.execute("SELECT key, value FROM service_state").fetchall()
        return dict(rows)

    # -- admin requests (served by the running service) -----------------------------------------
    def save_request(
        self, kind: str, args: Mapping[str, Any], at: datetime, *, expires_at: datetime
    ) -> int:
        """A request for the running service, bound to the deadline of the command waiting."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO admin_requests (kind, args, requested_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (kind, json.dumps(dict(args), sort_keys=True), utc_text(at), utc_text(expires_at)),
            )
            return int(cursor.lastrowid or 0)

    def take_requests(self, at: datetime) -> list[RequestRecord]:
        """Claim every unstarted request, oldest first (the service carries them out). A row
        past its deadline (or without one: no command wrote it) is finished as expired, and
        one whose arguments do not parse as failed; neither strands the others."""
        claimed: list[RequestRecord] = []
        with self.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_REQUEST_COLUMNS}, expires_at FROM admin_requests"
                " WHERE started_at IS NULL AND finished_at IS NULL ORDER BY id"
            ).fetchall()
            for *columns, expires_at in rows:
                request = _request(columns)
                request_id = request.id
                refusal = _refuse_request(columns[2], expires_at, at)
                if refusal is not None:
                    outcome, detail = refusal
                    conn.execute(
                        "UPDATE admin_requests SET started_at = ?, finished_at = ?,"
                        " outcome = ?, detail = ? WHERE id = ?",
                        (utc_text(at), utc_text(at), outcome, detail, request_id),
                    )
                    continue
                conn.execute(
                    "UPDATE admin_requests SET started_at = ? WHERE id = ?",
                    (utc_text(at), request_id),
                )
                claimed.append(replace(request, started_at=utc_text(at)))
        return claimed

    def expire_request(self, request_id: int, at: datetime, detail: str) -> bool:
        """The waiting command gave up: the request is never carried out unless it started
        already. True when it was expired (False: the service had claimed it)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE admin_requests SET started_at = ?, finished_at = ?, outcome = 'expired',"
                " detail = ? WHERE id = ? AND started_at IS NULL",
                (utc_text(at), utc_text(at), detail, request_id),
            )
            return cursor.rowcount > 0

    def finish_requests(
        self,
        ids: Iterable[int],
        pass_id: int | None,
        outcome: str,
        at: datetime,
        detail: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE admin_requests SET finished_at = ?, pass_id = ?, outcome = ?, detail = ?"
                " WHERE id = ?",
                [(utc_text(at), pass_id, outcome, detail, i) for i in ids],
            )

    def list_open_requests(self) -> list[RequestRecord]:
        """Requests not finished yet (waiting for the service, or being carried out)."""
        rows = self._fetch(
            f"SELECT {_REQUEST_COLUMNS} FROM admin_requests WHERE finished_at IS NULL ORDER BY id"
        )
        return [_request(row) for row in rows]

    def get_request(self, request_id: int) -> RequestRecord | None:
        rows = self._fetch(
            f"SELECT {_REQUEST_COLUMNS} FROM admin_requests WHERE id = ?", (request_id,)
        )
        return _request(rows[0]) if rows else None


_HINT_COLUMNS = (
    "id, hibob_id, event_type, received_at, attempts, deliveries, next_attempt_at, parked_at,"
    " last_error"
)


def _hint(row: Sequence[Any]) -> HintRecord:
    hint_id, hibob_id, event_type, received, attempts, deliveries, next_at, parked, error = row
    return HintRecord(
        hint_id, hibob_id, event_type, received, attempts, deliveries, next_at, parked, error
    )


_REQUEST_COLUMNS = "id, kind, args, requested_at, started_at, finished_at, pass_id, outcome, detail"


def _request(row: Sequence[Any]) -> RequestRecord:
    request_id, kind, raw, requested, started, finished, pass_id, outcome, detail = row
    return RequestRecord(
        request_id,
        kind,
        _request_args(raw) or {},  # unreadable ones were answered "failed" when claimed
        requested,
        started,
        finished,
        pass_id,
        outcome,
        detail,
    )


def _request_args(raw: str | None) -> dict[str, Any] | None:
    """A request row's arguments; None when they are not a JSON object."""
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return None
    return args if isinstance(args, dict) else None


def _refuse_request(
    raw: str | None, expires_at: str | None, now: datetime
) -> tuple[str, str] | None:
    """(outcome, detail) when a request row must not be carried out; None when it may."""
    if expires_at is None:
        return ("expired", "no deadline: not written by a reconciler command")
    try:
        deadline = datetime.fromisoformat(expires_at)
    except ValueError:
        return ("expired", f"unreadable deadline {expires_at[:40]!r}")
    if deadline.tzinfo is None or deadline <= now:
        return ("expired", "its command stopped waiting before the service claimed it")
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return ("failed", "unreadable arguments (not JSON)")
    if not isinstance(args, dict):
        return ("failed", "unreadable arguments (not a JSON object)")
    return None
