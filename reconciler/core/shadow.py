"""Pure: shadow mode's disagreements and its report (product §2.4).

`compute_disagreements` derives every disagreement between the desired state and what
360Learning holds from the plan the core computed over a full read, so what shadow mode reports
is exactly what the apply pass would change. `compute_shadow_report` splits the recorded ones into
lag (closed within `sync.shadow_lag_minutes`) and misses (still open past it). No I/O, no clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.inputs import PlanInput
from reconciler.core.models import (
    Action,
    Adopt,
    Create,
    Deactivate,
    GroupRole,
    LearningUser,
    Plan,
    Reactivate,
    Upsert,
)
from reconciler.core.vocabulary import DisagreementKind

Kind = DisagreementKind
EXAMPLES = 5  # employees named per kind in the report


@dataclass(frozen=True)
class Disagreement:
    """One way 360Learning differs from the desired state for one employee.

    `subject` names what differs within the kind: the attribute or custom field for `fields`
    (just a string, so a custom field is one more name), `group:role` for `groups`, else "".
    `wanted` is the desired value and `holds` what 360Learning holds, as shown to people.
    """

    hibob_id: str
    kind: DisagreementKind
    subject: str = ""
    email: str | None = None
    wanted: Any = None
    holds: Any = None
    reason: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.hibob_id, str(self.kind), self.subject)


@dataclass(frozen=True)
class ShadowRecord:
    """A disagreement as the store keeps it: when first and last seen, and when it closed."""

    disagreement: Disagreement
    first_seen_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None  # gone (no longer seen) | applied (the cut-over wrote it)


def compute_disagreements(
    plan: Plan, data: PlanInput, managers: Mapping[str, frozenset[str]] | None = None
) -> tuple[Disagreement, ...]:
    """Every disagreement the plan shows. `managers`: the managers (360Learning ids) read for
    the accounts whose manager link the plan would write; a link already there is no
    disagreement (the plan of an account not linked yet always writes it)."""
    found: list[Disagreement] = []
    learning_of = _learning_ids(plan, data)
    for action in plan.actions:
        found += _of_action(action, data, learning_of, managers or {})
    for hold in plan.held:
        if hold.what == "membership removal":
            found.append(
                Disagreement(
                    hold.hibob_id,
                    Kind.GROUPS,
                    "held removals",
                    hold.email,
                    None,
                    "member",
                    hold.reason,
                )
            )
        elif hold.what == "scheduled deactivation":
            found.append(
                Disagreement(
                    hold.hibob_id,
                    Kind.FIELDS,
                    "toBeDeactivatedAt",
                    hold.email,
                    "scheduled",
                    None,
                    hold.reason,
                )
            )
        else:
            found.append(
                Disagreement(
                    hold.hibob_id,
                    Kind.NOT_DEACTIVATED,
                    "",
                    hold.email,
                    "deleted",
                    "active",
                    hold.reason,
                )
            )
    for problem in plan.problems:
        if problem.reason.startswith("ambiguous"):
            found.append(
                Disagreement(
                    problem.hibob_id, Kind.AMBIGUOUS, "", problem.email, None, None, problem.reason
                )
            )
    unique = {d.key: d for d in found}
    return tuple(unique[k] for k in sorted(unique))


def _of_action(
    action: Action,
    data: PlanInput,
    learning_of: Mapping[str, str],
    managers: Mapping[str, frozenset[str]],
) -> list[Disagreement]:
    h, email = action.hibob_id, action.email
    user = _user(action.learning_user_id, data)
    if isinstance(action, Deactivate):
        if action.is_already_deleted:
            return []  # 360Learning holds it already: only the snapshot is behind
        held = user.status if user else "active"
        return [Disagreement(h, Kind.NOT_DEACTIVATED, "", email, "deleted", held, action.reason)]
    if not isinstance(action, Upsert):
        return []
    if isinstance(action, Create | Reactivate) or (
        isinstance(action, Adopt) and action.restore and (user is None or user.is_deleted)
    ):
        status = user.status if user else None
        return [Disagreement(h, Kind.MISSING, "", email, "active", status, action.reason)]
    found = []
    if action.activate:
        found.append(
            Disagreement(
                h, Kind.MISSING, "", email, "active", user.status if user else None, action.reason
            )
        )
    seen = user.attributes if user else {}
    found += [
        Disagreement(h, Kind.FIELDS, name, email, value, seen.get(name), action.reason)
        for name, value in sorted(action.changes.items())
    ]
    found += [
        Disagreement(h, Kind.GROUPS, _group(g), email, "member", None, action.reason)
        for g in action.add_groups
    ]
    found += [
        Disagreement(h, Kind.GROUPS, _group(g), email, None, "member", action.reason)
        for g in action.remove_groups
    ]
    if action.manager is not None and (
        manager := _manager_disagreement(action, data, learning_of, managers)
    ):
        found.append(manager)
    return found


def _manager_disagreement(
    action: Upsert,
    data: PlanInput,
    learning_of: Mapping[str, str],
    managers: Mapping[str, frozenset[str]],
) -> Disagreement | None:
    assert action.manager is not None
    new = action.manager.new
    wanted_id = learning_of.get(new) if new else None
    if new is not None and wanted_id is None:
        return None  # the manager has no account yet (reported as missing): the link follows
    uid = action.learning_user_id or ""
    links = data.actual_links.get(uid)
    actual = managers[uid] if uid in managers else (links.managers if links else None)
    if actual is not None and (actual == {wanted_id} if wanted_id else not actual):
        return None
    wanted = _mail_of(new, data) if new else None
    holds = sorted(_user_mail(u, data) for u in actual) if actual is not None else None
    return Disagreement(
        action.hibob_id, Kind.MANAGER, "", action.email, wanted, holds, action.reason
    )


def _learning_ids(plan: Plan, data: PlanInput) -> dict[str, str]:
    """Each employee's 360Learning account after the pass: linked, or the one it would adopt."""
    ids = {h: e.learning_user_id for h, e in data.snapshot.items() if e.learning_user_id}
    for action in plan.actions:
        if action.learning_user_id and not isinstance(action, Deactivate):
            ids[action.hibob_id] = action.learning_user_id
    return ids


def _user(learning_user_id: str | None, data: PlanInput) -> LearningUser | None:
    if not learning_user_id:
        return None
    if data.actual is not None:
        return data.actual.get(learning_user_id)
    for users in data.users_by_mail.values():
        for user in users:
            if user.learning_user_id == learning_user_id:
                return user
    return None


def _mail_of(hibob_id: str, data: PlanInput) -> str:
    wanted = data.desired.get(hibob_id)
    return (wanted.email if wanted else None) or hibob_id


def _user_mail(learning_user_id: str, data: PlanInput) -> str:
    user = _user(learning_user_id, data)
    return (user.mail if user else None) or learning_user_id


def _group(group: GroupRole) -> str:
    return f"{group.group_id}:{group.role}"


# -- the report --------------------------------------------------------------------------------
def compute_open_counts(records: Iterable[ShadowRecord]) -> dict[str, int]:
    """Open disagreements by kind, every kind present (the metrics gauge)."""
    counts = Counter(str(r.disagreement.kind) for r in records if r.closed_at is None)
    return {str(kind): counts.get(str(kind), 0) for kind in Kind}


def compute_shadow_report(
    records: Iterable[ShadowRecord],
    now: datetime,
    lag_minutes: float,
    since: datetime | None = None,
) -> dict[str, Any]:
    """The report's data: `misses` (open past the lag), `pending` (open, younger), `lag`
    (closed by the incumbent within the lag), `late` (closed by it after the lag), counts by
    kind for each and example employees. Applied ones (the cut-over) are only counted."""
    lag = timedelta(minutes=lag_minutes)
    sections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    applied = 0
    for record in records:
        last = record.closed_at or record.last_seen_at
        if since is not None and last < since:
            continue
        if record.closed_by == "applied":
            applied += 1
            continue
        age = (record.closed_at or now) - record.first_seen_at
        if record.closed_at is None:
            section = "misses" if age > lag else "pending"
        else:
            section = "lag" if age <= lag else "late"
        sections[section].append(compute_row(record, now))
    names = ("misses", "pending", "lag", "late")
    report: dict[str, Any] = {
        "lag_minutes": lag_minutes,
        "since": since.isoformat() if since else None,
        "open": len(sections["misses"]) + len(sections["pending"]),
        "applied": applied,
        "counts": {name: _by_kind(sections[name]) for name in names},
        "examples": {name: _examples(sections[name]) for name in names},
    }
    for name in names:
        report[name] = sorted(sections[name], key=lambda r: (r["kind"], r["employee_id"]))
    return report


def compute_row(record: ShadowRecord, now: datetime) -> dict[str, Any]:
    """One disagreement as the report shows it; `minutes`: how long it was (or is) open."""
    d = record.disagreement
    age = (record.closed_at or now) - record.first_seen_at
    return {
        "employee_id": d.hibob_id,
        "email": d.email,
        "kind": str(d.kind),
        "subject": d.subject,
        "wanted": d.wanted,
        "holds": d.holds,
        "reason": d.reason,
        "first_seen_at": record.first_seen_at.isoformat(),
        "last_seen_at": record.last_seen_at.isoformat(),
        "closed_at": record.closed_at.isoformat() if record.closed_at else None,
        "minutes": round(age.total_seconds() / 60, 1),
    }


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(r["kind"] for r in rows).items()))


def _examples(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: defaultdict[str, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["employee_id"]):
        ids = found[row["kind"]]
        if row["employee_id"] not in ids and len(ids) < EXAMPLES:
            ids.append(row["employee_id"])
    return dict(sorted(found.items()))
