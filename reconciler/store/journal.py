"""Pass history and the operation journal (every action, journalled before it is sent)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler.core.vocabulary import ActionKind, ActionOutcome, PassKind, PassOutcome
from reconciler.store.connection import Database
from reconciler.store.records import JournalRecord, PassRecord
from reconciler.store.schema import utc_text


class JournalTables(Database):
    # -- passes and journal -----------------------------------------------------------------
    def start_pass(self, kind: str, at: datetime, *, is_dry_run: bool = False) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO passes (kind, is_dry_run, started_at) VALUES (?, ?, ?)",
                (kind, int(is_dry_run), utc_text(at)),
            )
            pass_id = int(cursor.lastrowid or 0)
            self._live_passes.add(pass_id)
            return pass_id

    def finish_pass(
        self,
        pass_id: int,
        at: datetime,
        outcome: str,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE passes SET finished_at = ?, outcome = ?, counts = ?, error = ?"
                " WHERE id = ?",
                (utc_text(at), outcome, json.dumps(dict(counts), sort_keys=True), error, pass_id),
            )
            self._live_passes.discard(pass_id)

    def list_passes(self, limit: int = 10, *, include_dry_runs: bool = True) -> list[PassRecord]:
        """The latest passes, newest first."""
        where = "" if include_dry_runs else "WHERE is_dry_run = 0"
        rows = self._fetch(
            f"SELECT {_PASS_COLUMNS} FROM passes {where} ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_pass(row) for row in rows]

    def get_pass(self, pass_id: int) -> PassRecord | None:
        rows = self._fetch(f"SELECT {_PASS_COLUMNS} FROM passes WHERE id = ?", (pass_id,))
        return _pass(rows[0]) if rows else None

    def last_successful_pass_at(self) -> str | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT MAX(finished_at) FROM passes WHERE is_dry_run = 0"
                " AND outcome IN ('ok', 'held')"
            ).fetchone()
        return row[0] if row else None

    def journal_start(
        self,
        pass_id: int | None,
        hibob_id: str,
        email: str | None,
        action: str,
        fields: Iterable[str],
        reason: str,
        at: datetime,
        *,
        is_released: bool = False,
    ) -> int:
        """Journal an operation before it is sent (crash safety). `is_released`: a
        deactivation an admin released, which the breaker's window does not count."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO journal (pass_id, at, hibob_id, email, action, fields, reason,"
                " outcome, is_released) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    pass_id,
                    utc_text(at),
                    hibob_id,
                    email,
                    action,
                    json.dumps(list(fields)),
                    reason,
                    int(is_released),
                ),
            )
            return int(cursor.lastrowid or 0)

    def list_unconfirmed_creates(self) -> list[tuple[str, str]]:
        """(hibob id, mail) of creates a dead process sent but never saw answered, for
        employees still without a link: 360Learning may hold the account all the same."""
        with self._lock:
            live = sorted(self._live_passes)
            marks = ",".join("?" * len(live))
            rows = self.conn.execute(
                "SELECT DISTINCT j.hibob_id, j.email FROM journal AS j"
                " LEFT JOIN employees AS e ON e.hibob_id = j.hibob_id"
                " WHERE j.outcome = 'pending' AND j.action = 'create' AND j.email IS NOT NULL"
                f" AND (j.pass_id IS NULL OR j.pass_id NOT IN ({marks}))"
                " AND e.learning_user_id IS NULL ORDER BY j.id",
                live,
            ).fetchall()
        return [(str(row[0]), str(row[1])) for row in rows]

    def list_unconfirmed_writes(self) -> list[str]:
        """Linked employees with an operation a dead process sent but never saw answered: what
        the store holds for them may not be what 360Learning holds."""
        with self._lock:
            live = sorted(self._live_passes)
            marks = ",".join("?" * len(live))
            rows = self.conn.execute(
                "SELECT DISTINCT j.hibob_id FROM journal AS j"
                " JOIN employees AS e ON e.hibob_id = j.hibob_id"
                " WHERE j.outcome = 'pending'"
                f" AND (j.pass_id IS NULL OR j.pass_id NOT IN ({marks}))"
                " AND e.learning_user_id IS NOT NULL AND e.state IS NOT NULL ORDER BY j.hibob_id",
                live,
            ).fetchall()
        return [str(row[0]) for row in rows]

    def close_interrupted(self, current_pass_id: int, at: datetime) -> int:
        """Mark what a process that died mid-pass left open: its pass and pending operations.

        Called at the start of a real pass. Only one process writes a database (the instance
        lock), and the passes it is still running (the service runs targeted passes beside a
        long one) are left alone. The pass itself re-derives what is left to do; this keeps
        status and history truthful. Returns how many operations were never confirmed.
        """
        with self.transaction() as conn:
            live = sorted(self._live_passes)
            marks = ",".join("?" * len(live))
            conn.execute(
                "UPDATE passes SET outcome = 'interrupted', finished_at = ?"
                f" WHERE finished_at IS NULL AND is_dry_run = 0 AND id NOT IN ({marks})",
                (utc_text(at), *live),
            )
            cursor = conn.execute(
                "UPDATE journal SET outcome = 'interrupted'"
                " WHERE outcome = 'pending'"
                f" AND (pass_id IS NULL OR pass_id NOT IN ({marks}))",
                live,
            )
            closed = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM passes WHERE outcome = 'interrupted'"
                    " AND (counts IS NULL OR counts = '{}')"
                ).fetchall()
            ]
            for pass_id in closed:  # what it wrote before it died, from its journal
                counts = _journal_counts(conn, pass_id)
                conn.execute(
                    "UPDATE passes SET counts = ? WHERE id = ?",
                    (json.dumps(counts, sort_keys=True), pass_id),
                )
            return cursor.rowcount

    def journal_counts(self, pass_id: int) -> dict[str, int]:
        """What a pass wrote so far, from its journal (for a pass still running or killed)."""
        with self._lock:
            return _journal_counts(self.conn, pass_id)

    def journal_finish(self, journal_id: int, outcome: str, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE journal SET outcome = ?, error = ? WHERE id = ?",
                (outcome, error, journal_id),
            )

    def list_journal(
        self,
        *,
        hibob_id: str | Iterable[str] | None = None,
        since: str | None = None,
        limit: int | None = 1000,
        pass_id: int | None = None,
    ) -> list[JournalRecord]:
        """Journal rows, oldest first; `limit` None returns them all."""
        clauses: list[str] = []
        params: list[Any] = []
        if hibob_id is not None:
            ids = [hibob_id] if isinstance(hibob_id, str) else list(hibob_id)
            clauses.append(f"hibob_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if pass_id is not None:
            clauses.append("pass_id = ?")
            params.append(pass_id)
        if since:
            clauses.append("at >= ?")
            params.append(since)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._fetch(
            "SELECT pass_id, at, hibob_id, email, action, fields, outcome, reason, error"
            f" FROM journal {where} ORDER BY id LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [_journal(row) for row in rows]

    def count_deactivations_since(self, since: datetime) -> int:
        """Deactivations and schedules (writes of toBeDeactivatedAt, clearing ones too: the
        journal keeps no values) applied since `since`, the breaker's rolling window, except
        the ones an admin released."""
        with self._lock:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM journal WHERE outcome = 'ok' AND is_released = 0"
                " AND at >= ? AND (action = 'deactivate' OR fields LIKE '%\"toBeDeactivatedAt\"%')",
                (utc_text(since),),
            ).fetchone()
        return int(row[0])


_PASS_COLUMNS = "id, kind, is_dry_run, started_at, finished_at, outcome, counts, error"


def _pass(row: Sequence[Any]) -> PassRecord:
    pass_id, kind, is_dry_run, started_at, finished_at, outcome, counts, error = row
    return PassRecord(
        pass_id,
        PassKind(kind),
        bool(is_dry_run),
        started_at,
        finished_at,
        PassOutcome(outcome) if outcome else None,
        json.loads(counts or "{}"),
        error,
    )


def _journal(row: Sequence[Any]) -> JournalRecord:
    pass_id, at, hibob_id, email, action, fields, outcome, reason, error = row
    return JournalRecord(
        pass_id,
        at,
        hibob_id,
        email,
        ActionKind(action),
        tuple(json.loads(fields or "[]")),
        ActionOutcome(outcome),
        reason,
        error,
    )


_COUNT_SUFFIX = {"ok": "", "failed": "_failed", "pending": "_unconfirmed",
                 "interrupted": "_unconfirmed", "superseded": ""}  # fmt: skip


def _journal_counts(conn: Any, pass_id: int) -> dict[str, int]:
    """Counts named as a finished pass names them (`create`, `update_failed`...), plus
    `<action>_unconfirmed` for operations sent and never answered."""
    counts: dict[str, int] = {}
    for action, outcome, number in conn.execute(
        "SELECT action, outcome, COUNT(*) FROM journal WHERE pass_id = ? AND action != 'manager'"
        " GROUP BY action, outcome",
        (pass_id,),
    ).fetchall():
        if outcome not in _COUNT_SUFFIX:
            continue  # held and skipped rows are decisions, not writes
        key = "superseded" if outcome == "superseded" else action + _COUNT_SUFFIX[outcome]
        counts[key] = counts.get(key, 0) + int(number)
    return dict(sorted(counts.items()))
