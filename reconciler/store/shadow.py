"""Shadow mode's disagreements: recorded by each shadow pass (first and last seen, closed when a
pass no longer sees them, or once the cut-over applied them), read by the report, `explain`, the
metrics and the admin page. Decides nothing: the pure core computes what is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from reconciler.core.shadow import Disagreement, ShadowRecord
from reconciler.core.vocabulary import DisagreementKind
from reconciler.store.connection import Database
from reconciler.store.schema import utc_text

_COLUMNS = (
    "hibob_id, kind, subject, email, wanted, holds, reason, first_seen_at, last_seen_at,"
    " closed_at, closed_by"
)


class ShadowTables(Database):
    def record_disagreements(
        self, pass_id: int, found: Iterable[Disagreement], at: datetime
    ) -> tuple[int, int]:
        """What one complete shadow pass saw: new ones open, seen ones are extended, open ones
        it no longer sees close ("gone"). Returns (opened, closed)."""
        now = utc_text(at)
        found = list(found)
        with self.transaction() as conn:
            open_keys = {
                (r[0], r[1], r[2]): r[3]
                for r in conn.execute(
                    "SELECT hibob_id, kind, subject, id FROM shadow_disagreements"
                    " WHERE closed_at IS NULL"
                )
            }
            seen = {d.key for d in found}
            gone = [row_id for key, row_id in open_keys.items() if key not in seen]
            conn.executemany(
                "UPDATE shadow_disagreements SET closed_at = ?, closed_by = 'gone' WHERE id = ?",
                [(now, row_id) for row_id in gone],
            )
            opened = 0
            for d in found:
                values = (d.email, _json(d.wanted), _json(d.holds), d.reason)
                if d.key in open_keys:
                    conn.execute(
                        "UPDATE shadow_disagreements SET email = ?, wanted = ?, holds = ?,"
                        " reason = ?, last_seen_at = ?, last_pass_id = ? WHERE id = ?",
                        (*values, now, pass_id, open_keys[d.key]),
                    )
                else:
                    opened += 1
                    conn.execute(
                        "INSERT INTO shadow_disagreements (hibob_id, kind, subject, email, wanted,"
                        " holds, reason, first_seen_at, last_seen_at, first_pass_id,"
                        " last_pass_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*d.key, *values, now, now, pass_id, pass_id),
                    )
        return opened, len(gone)

    def close_applied_disagreements(self, at: datetime, hibob_ids: Iterable[str]) -> int:
        """The cut-over pass applied these employees' changes: their open disagreements close
        as "applied" (never counted as lag)."""
        rows = [(utc_text(at), h) for h in sorted(set(hibob_ids))]
        with self.transaction() as conn:
            cursor = conn.executemany(
                "UPDATE shadow_disagreements SET closed_at = ?, closed_by = 'applied'"
                " WHERE closed_at IS NULL AND hibob_id = ?",
                rows,
            )
            return cursor.rowcount

    def count_open_disagreements_by_kind(self) -> dict[str, int]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT kind, COUNT(*) FROM shadow_disagreements WHERE closed_at IS NULL"
                " GROUP BY kind"
            ).fetchall()
        found = dict(rows)
        return {str(kind): int(found.get(str(kind), 0)) for kind in DisagreementKind}

    def list_disagreements(
        self, *, hibob_id: str | None = None, is_open: bool | None = None
    ) -> list[ShadowRecord]:
        clauses, params = [], []
        if hibob_id is not None:
            clauses.append("hibob_id = ?")
            params.append(hibob_id)
        if is_open is not None:
            clauses.append("closed_at IS NULL" if is_open else "closed_at IS NOT NULL")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM shadow_disagreements{where} ORDER BY id", params
            ).fetchall()
        return [_record(row) for row in rows]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _record(row: tuple[Any, ...]) -> ShadowRecord:
    hibob_id, kind, subject, email, wanted, holds, reason, first, last, closed, by = row
    return ShadowRecord(
        Disagreement(
            hibob_id,
            DisagreementKind(kind),
            subject,
            email,
            json.loads(wanted) if wanted else None,
            json.loads(holds) if holds else None,
            reason or "",
        ),
        datetime.fromisoformat(first),
        datetime.fromisoformat(last),
        datetime.fromisoformat(closed) if closed else None,
        by,
    )
