"""Held deactivations, quarantine (failure counts and back-off) and skipped employees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from reconciler.store.connection import Database
from reconciler.store.records import HeldDeactivation, QuarantinedEmployee, SkippedEmployee
from reconciler.store.schema import utc_text


class HoldTables(Database):
    def record_failure(
        self,
        hibob_id: str,
        error: str,
        *,
        quarantine_after: int,
        quarantined_until: datetime | None,
        at: datetime,
    ) -> int:
        """Count a failed apply; quarantine from `quarantine_after` failures. Returns the count."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO employees (hibob_id, failures, last_error, updated_at)"
                " VALUES (?, 1, ?, ?) ON CONFLICT(hibob_id) DO UPDATE SET"
                " failures = failures + 1, last_error = excluded.last_error,"
                " updated_at = excluded.updated_at",
                (hibob_id, error, utc_text(at)),
            )
            failures = conn.execute(
                "SELECT failures FROM employees WHERE hibob_id = ?", (hibob_id,)
            ).fetchone()[0]
            if failures >= quarantine_after:
                conn.execute(
                    "UPDATE employees SET quarantined_until = ? WHERE hibob_id = ?",
                    (utc_text(quarantined_until) if quarantined_until else None, hibob_id),
                )
        return int(failures)

    def list_quarantined(self, now: datetime) -> list[QuarantinedEmployee]:
        rows = self._fetch(
            "SELECT hibob_id, email, last_error, failures, quarantined_until FROM employees"
            " WHERE quarantined_until IS NOT NULL AND quarantined_until > ?"
            " ORDER BY hibob_id",
            (utc_text(now),),
        )
        return [_quarantined(row) for row in rows]

    # -- held deactivations -----------------------------------------------------------------
    def replace_held(
        self,
        pass_id: int,
        held: Iterable[tuple[str, str | None, str]],
        at: datetime,
        *,
        keep_others: bool = False,
        is_releasable: bool = True,
        done: Iterable[str] = (),
    ) -> None:
        """Record the deactivations a pass held; a targeted pass keeps the other rows.

        `done`: ids no longer waiting (applied or no longer wanted), removed in any case.
        """
        held = list(held)
        with self.transaction() as conn:
            if not keep_others:
                kept = [h for h, _, _ in held]
                marks = ",".join("?" * len(kept))
                conn.execute(
                    f"DELETE FROM held_deactivations WHERE hibob_id NOT IN ({marks})", kept
                )
            conn.executemany(
                "DELETE FROM held_deactivations WHERE hibob_id = ?", [(h,) for h in done]
            )
            # A deactivation held before keeps when and why it was first held.
            conn.executemany(
                "INSERT INTO held_deactivations (hibob_id, email, reason, pass_id, held_at,"
                " is_releasable) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hibob_id) DO UPDATE SET"
                " email = excluded.email, is_releasable = excluded.is_releasable",
                [(h, e, r, pass_id, utc_text(at), int(is_releasable)) for h, e, r in held],
            )

    def list_held_ids(self) -> frozenset[str]:
        """Deactivations a safety limit held, which stay held until an admin releases them."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT hibob_id FROM held_deactivations WHERE is_releasable = 1"
            ).fetchall()
        return frozenset(r[0] for r in rows)

    def list_held(self) -> list[HeldDeactivation]:
        rows = self._fetch(
            "SELECT hibob_id, email, reason, pass_id, held_at, is_releasable"
            " FROM held_deactivations ORDER BY hibob_id"
        )
        return [_held(row) for row in rows]

    # -- quarantine and skips, as admins see them -------------------------------------------
    def clear_quarantine(self, hibob_ids: Iterable[str] | None, at: datetime) -> list[str]:
        """Lift quarantine (all when `hibob_ids` is None); the next pass retries them.

        Returns the ids that were quarantined and now are not."""
        now = utc_text(at)
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT hibob_id FROM employees WHERE quarantined_until IS NOT NULL"
                " AND quarantined_until > ? ORDER BY hibob_id",
                (now,),
            ).fetchall()
            wanted = None if hibob_ids is None else set(hibob_ids)
            cleared = [r[0] for r in rows if wanted is None or r[0] in wanted]
            conn.executemany(
                "UPDATE employees SET failures = 0, quarantined_until = NULL,"
                " updated_at = ? WHERE hibob_id = ?",
                [(now, h) for h in cleared],
            )
        return cleared

    def record_skips(
        self, pass_id: int, skips: Iterable[tuple[str, str | None, str]], at: datetime
    ) -> list[tuple[str, str | None, str]]:
        """Journal why employees were skipped, once per reason: a row is written only when the
        employee's latest journal row is not the same skip. Quarantined employees are left
        out (quarantine has its own record). Returns the skips written."""
        written = []
        with self.transaction() as conn:
            for hibob_id, email, reason in skips:
                quarantined = conn.execute(
                    "SELECT 1 FROM employees WHERE hibob_id = ? AND quarantined_until > ?",
                    (hibob_id, utc_text(at)),
                ).fetchone()
                last = conn.execute(
                    "SELECT outcome, reason FROM journal WHERE hibob_id = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (hibob_id,),
                ).fetchone()
                if quarantined or (last and tuple(last) == ("skipped", reason)):
                    continue
                conn.execute(
                    "INSERT INTO journal (pass_id, at, hibob_id, email, action, fields, reason,"
                    " outcome) VALUES (?, ?, ?, ?, 'skip', '[]', ?, 'skipped')",
                    (pass_id, utc_text(at), hibob_id, email, reason),
                )
                written.append((hibob_id, email, reason))
        return written

    def list_skipped(self) -> list[SkippedEmployee]:
        """Employees whose latest journal row is a skip: still skipped, with the reason."""
        rows = self._fetch(
            "SELECT hibob_id, email, reason, at FROM journal AS j"
            " WHERE outcome = 'skipped' AND id = (SELECT MAX(id) FROM journal"
            " WHERE hibob_id = j.hibob_id) ORDER BY hibob_id"
        )
        return [_skipped(row) for row in rows]


def _quarantined(row: Sequence[Any]) -> QuarantinedEmployee:
    hibob_id, email, last_error, failures, until = row
    return QuarantinedEmployee(hibob_id, email, last_error, failures, until)


def _held(row: Sequence[Any]) -> HeldDeactivation:
    hibob_id, email, reason, pass_id, held_at, is_releasable = row
    return HeldDeactivation(hibob_id, email, reason, pass_id, held_at, bool(is_releasable))


def _skipped(row: Sequence[Any]) -> SkippedEmployee:
    hibob_id, email, reason, at = row
    return SkippedEmployee(hibob_id, email, reason, at)
