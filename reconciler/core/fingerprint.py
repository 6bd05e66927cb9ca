"""Pure: which employees an incremental pass may skip because nothing they depend on changed.

An employee's source key hashes what its decision depends on besides its snapshot row: the
record Hibob returned (`Employee.fingerprint`), the decision-relevant settings (a hash of
`decision_settings` and the plan's other knobs), today's date where dates are decided, and
its manager's snapshot row (link and status: whether a manager link can be made). A pass that
planned nothing for an employee stores the key, and a pass that planned something for it
forgets it (what it planned may never land: a failed write, a killed process); the store also
forgets it whenever the row changes (a trigger), so a stored key always belongs to the row
beside it and to the last decision taken on it.

An employee whose key matches is left out of `compute_desired` and `compute_plan`, unless
something outside its key could change its decision this pass: its email is shared with
another employee read or with an absent one (ambiguity), its manager is computed this pass,
or its id came back twice. Unchanged employees still count for absence, the breaker (their
rows stay in the snapshot) and duplicate emails. Only incremental passes skip: a full resync
compares with 360Learning, a targeted pass reads one employee.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from reconciler.core.models import Employee, SnapshotEntry

MANAGER_FIELD = "work.reportsTo"


def compute_settings_fingerprint(*parts: str) -> str:
    """A short hash of the decision settings (their stable JSON) and any other knob text."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def compute_source_key(
    employee: Employee,
    settings_fingerprint: str,
    today: date,
    snapshot: Mapping[str, SnapshotEntry],
) -> str | None:
    """The employee's key, or None when its record carries no fingerprint (never skipped)."""
    if not employee.fingerprint:
        return None
    manager_id = employee.values.get(MANAGER_FIELD)
    manager = snapshot.get(str(manager_id)) if manager_id is not None else None
    link = f"{manager.learning_user_id}:{int(manager.is_active)}" if manager else "-"
    return f"{employee.fingerprint}.{settings_fingerprint}.{today.isoformat()}.{link}"


def compute_source_keys(
    employees: Iterable[Employee],
    settings_fingerprint: str,
    today: date,
    snapshot: Mapping[str, SnapshotEntry],
) -> dict[str, str]:
    keys = {}
    for employee in employees:
        key = compute_source_key(employee, settings_fingerprint, today, snapshot)
        if key is not None:
            keys[employee.hibob_id] = key
    return keys


def compute_unchanged(
    employees: Sequence[Employee],
    keys: Mapping[str, str],
    stored: Mapping[str, str],
    snapshot: Mapping[str, SnapshotEntry],
) -> frozenset[str]:
    """The employees an incremental pass may leave out of desired and plan."""
    ids = Counter(e.hibob_id for e in employees)
    read = set(ids)
    email_of = {e.hibob_id: e.email for e in employees}
    emails = Counter(m for m in email_of.values() if m)
    for hibob_id, entry in snapshot.items():  # absent linked employees keep their email
        if hibob_id not in read and entry.is_linked and entry.email:
            emails[entry.email] += 1
    unchanged = {
        h
        for h, key in keys.items()
        if stored.get(h) == key
        and ids[h] == 1
        and (not (mail := email_of.get(h)) or emails[mail] == 1)
    }
    # A manager computed this pass may become (or stop being) linkable: recompute the team.
    return frozenset(
        e.hibob_id
        for e in employees
        if e.hibob_id in unchanged
        and (
            (manager := e.values.get(MANAGER_FIELD)) is None
            or str(manager) == e.hibob_id
            or str(manager) in unchanged
            or str(manager) not in read
        )
    )


def compute_keys_to_store(
    keys: Mapping[str, str],
    computed: Iterable[str],
    touched: Iterable[str],
) -> dict[str, str]:
    """Keys of the employees this pass computed and planned nothing for (no action, no
    problem, no hold): what the next pass may skip."""
    untouched = set(computed) - set(touched)
    return {h: keys[h] for h in sorted(untouched) if h in keys}
