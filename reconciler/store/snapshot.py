"""The snapshot: per Hibob employee, the last applied state and the link to its 360Learning user,
and every email seen for an employee."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import msgspec

from reconciler.core.models import AppliedState, GroupRole, SnapshotEntry
from reconciler.store.connection import Database
from reconciler.store.schema import utc_text

_SAVE_APPLIED = (
    "INSERT INTO employees (hibob_id, learning_user_id, email, state,"
    " failures, quarantined_until, last_error, updated_at)"
    " VALUES (?, ?, ?, ?, 0, NULL, NULL, ?)"
    " ON CONFLICT(hibob_id) DO UPDATE SET learning_user_id = excluded.learning_user_id,"
    " email = excluded.email, state = excluded.state,"
    " failures = 0, quarantined_until = NULL, last_error = NULL,"
    " updated_at = excluded.updated_at"
)
"""A successful apply: the state and the link, failures cleared."""
_JOURNAL_ADOPTION = (
    "INSERT INTO journal (pass_id, at, hibob_id, email, action, fields, reason, outcome)"
    " VALUES (?, ?, ?, ?, 'adopt', '[]', ?, 'ok')"
)


class SnapshotTables(Database):
    # -- snapshot ---------------------------------------------------------------------------
    def load_snapshot(self) -> dict[str, SnapshotEntry]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT hibob_id, learning_user_id, email, state, failures, quarantined_until,"
                " last_error FROM employees"
            ).fetchall()
        return {row[0]: _entry(row) for row in rows}

    def load_entries(
        self,
        hibob_ids: Iterable[str] = (),
        *,
        emails: Iterable[str] = (),
        learning_user_ids: Iterable[str] = (),
        managed_by: Iterable[str] = (),
    ) -> dict[str, SnapshotEntry]:
        """The rows of these employees, of whoever holds these emails or accounts, and of
        the employees whose applied manager is one of `managed_by` (indexed lookups: what a
        targeted pass reads instead of the whole snapshot)."""
        wheres = (
            ("hibob_id", sorted(set(hibob_ids))),
            ("email", sorted(set(emails))),
            ("learning_user_id", sorted(set(learning_user_ids))),
            ("json_extract(state, '$.manager')", sorted(set(managed_by))),
        )
        found: dict[str, SnapshotEntry] = {}
        with self._lock:
            for column, values in wheres:
                for start in range(0, len(values), 500):
                    chunk = values[start : start + 500]
                    rows = self.conn.execute(
                        f"SELECT {_COLUMNS} FROM employees WHERE {column} IN"
                        f" ({', '.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                    found.update((row[0], _entry(row)) for row in rows)
        return found

    def load_source_keys(self) -> dict[str, str]:
        """hibob id -> the source key stored by the last pass that planned nothing for it."""
        with self._lock:
            rows = self.conn.execute("SELECT hibob_id, source_key FROM source_keys").fetchall()
        return dict(rows)

    def save_source_keys(self, keys: Mapping[str, str], forget: Iterable[str] = ()) -> None:
        """Store the keys of the employees a pass planned nothing for, and forget those of the
        employees it planned something for (`forget`): a key stored by an earlier pass would
        let the next pass skip them while what it planned may never have been applied."""
        stored = self.load_source_keys()
        changed = [(k, h) for h, k in keys.items() if stored.get(h) != k]
        gone = [(h,) for h in forget if h in stored and h not in keys]
        if not (changed or gone):
            return
        with self.transaction() as conn:
            conn.executemany("DELETE FROM source_keys WHERE hibob_id = ?", gone)
            conn.executemany(
                "INSERT OR REPLACE INTO source_keys (source_key, hibob_id) VALUES (?, ?)", changed
            )

    def count_managed_both(self) -> tuple[int, int]:
        """(linked employees whose applied state is active, the group memberships they hold
        that the reconciler manages), the breaker's denominators, in one query."""
        with self._lock:
            users, memberships = self.conn.execute(
                "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM json_each(state, '$.groups')"
                " g WHERE g.value NOT IN (SELECT k.value FROM json_each(state, '$.kept_groups')"
                " k))), 0) FROM employees WHERE learning_user_id IS NOT NULL"
                " AND json_extract(state, '$.is_active')"
            ).fetchone()
        return int(users), int(memberships)

    def get_entry(self, hibob_id: str) -> SnapshotEntry | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT hibob_id, learning_user_id, email, state, failures, quarantined_until,"
                " last_error FROM employees WHERE hibob_id = ?",
                (hibob_id,),
            ).fetchone()
        return _entry(row) if row else None

    def save_applied(
        self,
        hibob_id: str,
        *,
        learning_user_id: str | None,
        email: str | None,
        state: AppliedState | None,
        at: datetime,
        keep_manager: bool = False,
    ) -> None:
        """Record a successful apply: the new state, the link, and clear failures.

        With `keep_manager`, the manager link stays as stored: the links step owns it, and a
        restore running beside this write may have recorded since the plan that it dropped
        the link (read and written in one transaction, so neither write undoes the other)."""
        with self.transaction() as conn:
            if keep_manager and state is not None:
                row = conn.execute(
                    "SELECT state FROM employees WHERE hibob_id = ?", (hibob_id,)
                ).fetchone()
                if row and row[0] is not None:
                    state = replace(state, manager=state_from_json(row[0]).manager)
            text = state_to_json(state) if state is not None else None
            conn.execute(
                _SAVE_APPLIED,
                (hibob_id, learning_user_id, email, text, utc_text(at)),
            )

    def record_adoption(
        self,
        pass_id: int | None,
        hibob_id: str,
        email: str | None,
        reason: str,
        *,
        learning_user_id: str,
        state: AppliedState,
        at: datetime,
    ) -> None:
        """An adoption that sent nothing: its journal row (ok) and the applied state with the
        link, in one transaction."""
        self.record_adoptions(pass_id, [(hibob_id, email, reason, learning_user_id, state)], at)

    def record_adoptions(
        self,
        pass_id: int | None,
        adoptions: Iterable[tuple[str, str | None, str, str, AppliedState]],
        at: datetime,
    ) -> None:
        """Many adoptions that sent nothing, (hibob id, email, reason, learning user id,
        state) each: their journal rows (ok) and applied states with the links, all in one
        transaction (the migration case: thousands at once; none or all after a crash)."""
        rows = list(adoptions)
        when = utc_text(at)
        with self.transaction() as conn:
            conn.executemany(
                _JOURNAL_ADOPTION,
                [(pass_id, when, h, email, reason) for h, email, reason, _, _ in rows],
            )
            conn.executemany(
                _SAVE_APPLIED,
                [(h, uid, email, state_to_json(state), when) for h, email, _, uid, state in rows],
            )

    def save_state(self, hibob_id: str, state: AppliedState | None) -> None:
        """Correct the applied state alone (failures, link and email unchanged); None marks a
        linked account unfinished, which the next plan finishes with a full write."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE employees SET state = ? WHERE hibob_id = ?",
                (state_to_json(state) if state is not None else None, hibob_id),
            )

    def save_manager(self, hibob_id: str, manager: str | None) -> None:
        """Record the manager link alone (the rest of the state as stored now)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT state FROM employees WHERE hibob_id = ?", (hibob_id,)
            ).fetchone()
            if row and row[0] is not None:
                state = replace(state_from_json(row[0]), manager=manager)
                conn.execute(
                    "UPDATE employees SET state = ? WHERE hibob_id = ?",
                    (state_to_json(state), hibob_id),
                )

    def drop_manager(self, manager: str, among: Iterable[str] | None = None) -> list[str]:
        """A restore dropped the links to `manager`'s account: record it on the employees
        whose state names that manager (all, or those `among`), so their plans link them
        again; in one transaction. Returns their Hibob ids."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT hibob_id, state FROM employees"
                " WHERE state IS NOT NULL AND json_extract(state, '$.manager') = ?",
                (manager,),
            ).fetchall()
            wanted = None if among is None else set(among)
            dropped = []
            for hibob_id, text in rows:
                if wanted is None or hibob_id in wanted:
                    state = replace(state_from_json(text), manager=None)
                    conn.execute(
                        "UPDATE employees SET state = ? WHERE hibob_id = ?",
                        (state_to_json(state), hibob_id),
                    )
                    dropped.append(str(hibob_id))
        return dropped

    def save_link(
        self, hibob_id: str, learning_user_id: str, email: str | None, at: datetime
    ) -> None:
        """Record the link as soon as it is known, before the rest of the apply finishes."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO employees (hibob_id, learning_user_id, email, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(hibob_id) DO UPDATE SET"
                " learning_user_id = excluded.learning_user_id, email = excluded.email,"
                " updated_at = excluded.updated_at",
                (hibob_id, learning_user_id, email, utc_text(at)),
            )

    def count_employees(self) -> int:
        """Every employee the store knows (the population of the last complete reads)."""
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM employees").fetchone()[0])

    def count_managed(self) -> int:
        """Linked employees whose last applied state is active (the breaker's "managed")."""
        with self._lock:
            return int(
                self.conn.execute(
                    "SELECT COUNT(*) FROM employees WHERE learning_user_id IS NOT NULL"
                    " AND json_extract(state, '$.is_active')"
                ).fetchone()[0]
            )

    # -- every email seen for an employee (lookups by a former address) ----------------------
    def save_seen_emails(
        self, current: Mapping[str, str], at: datetime, *, is_complete: bool
    ) -> None:
        """Record each employee's email as read; `is_complete`: everyone was read."""
        known = self.load_known_emails(None if is_complete else list(current))
        changed = [(h, e) for h, e in current.items() if known.get(h) != e]
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE employee_emails SET is_current = 0 WHERE hibob_id = ?",
                [(h,) for h, _ in changed],
            )
            conn.executemany(
                "INSERT INTO employee_emails (hibob_id, email, first_seen_at, last_seen_at,"
                " is_current) VALUES (?, ?, ?, ?, 1) ON CONFLICT(hibob_id, email) DO UPDATE"
                " SET is_current = 1, last_seen_at = excluded.last_seen_at",
                [(h, e, utc_text(at), utc_text(at)) for h, e in changed],
            )
            if is_complete:
                gone = [(h,) for h in known if h not in current]
                conn.executemany(
                    "UPDATE employee_emails SET is_current = 0 WHERE hibob_id = ?", gone
                )

    def load_known_emails(
        self, hibob_ids: Iterable[str] | None = None, *, emails: Iterable[str] | None = None
    ) -> dict[str, str]:
        """hibob id -> the email last read for that employee (only these employees, or only
        those whose email is one of `emails`, when given)."""
        if hibob_ids is None and emails is None:
            with self._lock:
                rows = self.conn.execute(
                    "SELECT hibob_id, email FROM employee_emails WHERE is_current = 1"
                ).fetchall()
            return dict(rows)
        column, values = ("hibob_id", hibob_ids) if hibob_ids is not None else ("email", emails)
        wanted = sorted(set(values or ()))
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(
                    self.conn.execute(
                        "SELECT hibob_id, email FROM employee_emails WHERE is_current = 1"
                        f" AND {column} IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                )
        return found

    def find_employees_by_email(self, email: str) -> list[str]:
        """Hibob ids that have had `email`, the most recent holder first."""
        wanted = email.strip().lower()
        with self._lock:
            rows = self.conn.execute(
                "SELECT hibob_id FROM employee_emails WHERE email = ? UNION ALL"
                " SELECT hibob_id FROM employees WHERE email = ?",
                (wanted, wanted),
            ).fetchall()
            order = self.conn.execute(
                "SELECT hibob_id, MAX(last_seen_at) FROM employee_emails WHERE email = ?"
                " GROUP BY hibob_id",
                (wanted,),
            ).fetchall()
        latest = dict(order)
        found = list(dict.fromkeys(r[0] for r in rows))
        return sorted(found, key=lambda h: latest.get(h) or "", reverse=True)

    def find_employee_ids(self, identifier: str) -> list[str]:
        """Hibob ids known here for an id or any email the employee has had (case-insensitive),
        the most recent holder of an email first."""
        wanted = identifier.strip()
        by_id = self._fetch(
            "SELECT hibob_id FROM employees WHERE hibob_id = ? UNION"
            " SELECT hibob_id FROM journal WHERE hibob_id = ?",
            (wanted, wanted),
        )
        by_mail = self.find_employees_by_email(wanted) if "@" in wanted else []
        journal = [
            r[0]
            for r in self._fetch(
                "SELECT DISTINCT hibob_id FROM journal WHERE lower(email) = ?", (wanted.lower(),)
            )
        ]
        return list(dict.fromkeys([r[0] for r in by_id] + by_mail + journal))


_COLUMNS = "hibob_id, learning_user_id, email, state, failures, quarantined_until, last_error"


def _entry(row: tuple[Any, ...]) -> SnapshotEntry:
    return SnapshotEntry(
        hibob_id=row[0],
        learning_user_id=row[1],
        email=row[2],
        state=state_from_json(row[3]) if row[3] else None,
        failures=row[4] or 0,
        quarantined_until=datetime.fromisoformat(row[5]) if row[5] else None,
        last_error=row[6],
    )


def state_to_json(state: AppliedState) -> str:
    return json.dumps(
        {
            "is_active": state.is_active,
            "attributes": dict(state.attributes),
            "groups": sorted([g.group_id, g.role] for g in state.groups),
            "manager": state.manager,
            "kept_groups": sorted([g.group_id, g.role] for g in state.kept_groups),
            "is_external_id_linked": state.is_external_id_linked,
        },
        sort_keys=True,
    )


_decode_state = msgspec.json.Decoder().decode
"""A whole snapshot's states are decoded each incremental pass: msgspec takes about half
json.loads's time (0.19 s against 0.41 s for 17,400 states)."""
_GROUP_ROLES: dict[tuple[str, str], GroupRole] = {}
"""Shared GroupRole records: a company has a few groups, the snapshot 17,400 memberships."""


def _group_roles(pairs: Iterable[Any]) -> frozenset[GroupRole]:
    found = []
    for group_id, role in pairs:
        key = (group_id, role)
        if (group := _GROUP_ROLES.get(key)) is None:
            group = _GROUP_ROLES.setdefault(key, GroupRole(group_id, role))
        found.append(group)
    return frozenset(found)


def state_from_json(text: str) -> AppliedState:
    raw = _decode_state(text)
    return AppliedState(
        is_active=bool(raw.get("is_active")),
        attributes=raw.get("attributes") or {},
        groups=_group_roles(raw.get("groups") or ()),
        manager=raw.get("manager"),
        kept_groups=_group_roles(raw.get("kept_groups") or ()),
        # States written before the flag existed were made by create/adopt, which link.
        is_external_id_linked=bool(raw.get("is_external_id_linked", True)),
    )
