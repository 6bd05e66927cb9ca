"""Pure: one Hibob employee + settings + today -> the 360Learning user we want (product §1.3, §1.5).

Called by reconcile for every employee read. Missing fields mean *unknown* and are left out of
the result, so they never clear a value in 360Learning. No I/O, no clock reads (`today` is
passed in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from reconciler.config import Settings
from reconciler.core.mapping import LANGS as LANGS  # re-exported
from reconciler.core.mapping import Mapped, compute_mapped, rule_sources
from reconciler.core.models import Employee, GroupRole, SnapshotEntry

Verdict = Literal["active", "inactive", "wait", "unknown", "skip", "out_of_scope"]
# Hibob access status values (list `status`); anything else, null included, is unknown.
ACCESS_STATUSES = ("Active", "Inactive")

# Fields every pass reads; scope, organization, language and group rules add theirs.
BASE_FIELDS = (
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.title",
    "work.department",
    "work.site",
    "work.reportsTo",
    "work.startDate",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "employee.lastDayOfWork",
)
# Control, format (zero-width, bidi), surrogate and default-ignorable characters are invisible
# in a mail client: an address holding one is a paste accident or a spoof, never a mailbox.
_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_ADDRESS_PART = rf"[^@\s{_INVISIBLE}]+"
_MAIL = re.compile(rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$")


@dataclass(frozen=True)
class Desired:
    """What one employee should look like in 360Learning, and why."""

    hibob_id: str
    email: str | None
    verdict: Verdict
    reason: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    groups: frozenset[GroupRole] | None = None  # None: a rule's field is unknown
    manager_hibob_id: str | None = None
    is_manager_known: bool = False
    unknown_field: str | None = None  # verdict "unknown": the deciding field Hibob withheld
    mapping_problems: tuple[str, ...] = ()  # values the rules refused: reported, not sent
    create_only: frozenset[str] = frozenset()  # attributes written at create/adoption only
    is_leaving: bool = False  # Hibob holds a termination date or last day (not yet cleared)


def required_fields(settings: Settings) -> list[str]:
    fields = list(BASE_FIELDS)
    extra = [
        *rule_sources(settings),
        *settings.hibob.extra_fields,
        *(r.field for r in settings.mapping.groups),
        *(c.field for g in settings.scope.groups for c in g.conditions),
    ]
    for name in extra:
        if name and name not in fields:
            fields.append(name)
    return fields


def compute_desired(
    employee: Employee, settings: Settings, now: datetime, in_scope: bool | None
) -> Desired:
    """`now` is the pass's clock reading; dates are decided in `mapping.timezone`."""
    email = employee.email
    if in_scope is False:
        return Desired(employee.hibob_id, email, "out_of_scope", "out of scope")
    if in_scope is None:
        field_id = compute_unknown_scope_field(settings, employee)
        return Desired(
            employee.hibob_id,
            email,
            "unknown",
            f"scope depends on {field_id}, which Hibob did not return (permissions)",
            unknown_field=field_id,
        )
    today = local_today(now, settings.mapping.timezone)
    verdict, reason = compute_lifecycle(employee, settings, today)
    if verdict == "unknown":
        return Desired(employee.hibob_id, email, "unknown", reason, unknown_field="internal.status")
    if verdict == "active":
        if not email:
            return Desired(employee.hibob_id, None, "skip", "no email in Hibob")
        if not _MAIL.match(email):
            return Desired(employee.hibob_id, email, "skip", f"invalid email {email!r}")
    manager_known = settings.mapping.manager and employee.has("work.reportsTo")
    mapped = compute_mapped(employee, settings)
    return Desired(
        hibob_id=employee.hibob_id,
        email=email,
        verdict=verdict,
        reason=reason,
        attributes=compute_attributes(employee, settings, today, mapped),
        mapping_problems=mapped.problems,
        create_only=mapped.create_only,
        groups=compute_groups(employee, settings),
        manager_hibob_id=_text(employee.value("work.reportsTo")) if manager_known else None,
        is_manager_known=bool(manager_known),
        is_leaving=bool(
            employee.value("internal.terminationDate") or employee.value("employee.lastDayOfWork")
        ),
    )


def compute_lifecycle(employee: Employee, settings: Settings, today: date) -> tuple[Verdict, str]:
    status = employee.value("internal.status")
    if status not in ACCESS_STATUSES:
        # Hibob returns null for a field the service user may not see; never read that as
        # Inactive. A value outside the list (e.g. "ACTIVE") is not one Bob sends: unknown too.
        shown = "not returned" if not employee.has("internal.status") else f"{status!r}"
        return "unknown", (
            f"access status (internal.status) is {shown}: not a known value (permissions?)"
        )
    # Its machine values (employed, hired, terminated, garden leave) say as much as its labels.
    lifecycle = (
        employee.label("internal.lifecycleStatus")
        or _text(employee.value("internal.lifecycleStatus"))
        or ""
    ).lower()
    start = _date(employee.value("work.startDate"))
    if status == "Active":
        return "active", f"active in Hibob ({lifecycle or 'employed'})"
    if lifecycle == "hired" or (start is not None and start > today and "termin" not in lifecycle):
        if settings.sync.prehire == "provision":
            return "active", f"hired, starts {start or 'soon'}: provisioned before start"
        days = settings.sync.prehire_days_before
        if start is None or start - timedelta(days=days) <= today:
            return "active", f"hired, starts {start}"
        return "wait", f"hired, provisioned from {start - timedelta(days=days)}"
    return "inactive", f"inactive in Hibob ({lifecycle or 'no access'})"


def compute_attributes(
    employee: Employee, settings: Settings, today: date, mapped: Mapped | None = None
) -> dict[str, Any]:
    """The mail (the identity, not configurable), what the mapping rules give, and the
    scheduled deactivation."""
    known: dict[str, Any] = {}
    if employee.has("root.email"):
        known["mail"] = employee.email
    known.update((mapped or compute_mapped(employee, settings)).attributes)
    if settings.mapping.deactivate_on_last_day:
        fields = ("employee.lastDayOfWork", "internal.terminationDate")
        if all(employee.has(f) for f in fields):
            last = _date(employee.value(fields[0])) or _date(employee.value(fields[1]))
            # Access ends after the last day: deactivate at the next local midnight (Hibob
            # changes lifecycle status at midnight in the site's timezone).
            after = last + timedelta(days=1) if last and last >= today else None
            known["toBeDeactivatedAt"] = (
                local_midnight_utc(after, settings.mapping.timezone) if after else None
            )
    return known


def compute_groups(employee: Employee, settings: Settings) -> frozenset[GroupRole] | None:
    groups = set()
    if settings.learning.default_group_id:
        groups.add(GroupRole(settings.learning.default_group_id, settings.learning.default_role))
    for rule in settings.mapping.groups:
        if not employee.has_label(rule.field):
            return None
        if employee.label(rule.field) == rule.label:
            groups.add(GroupRole(rule.group_id, rule.role))
    return frozenset(groups)


def compute_unknown_scope_field(settings: Settings, employee: Employee) -> str | None:
    """The first scope field Hibob did not return (or gave without its label) for this
    employee."""
    for group in settings.scope.groups:
        for condition in group.conditions:
            if not employee.has_label(condition.field):
                return condition.field
    return None


def local_today(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def local_midnight_utc(day: date, timezone: str) -> str:
    """Midnight starting `day` in `timezone`, as 360Learning's ISO 8601 UTC text."""
    moment = datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def _date(raw: Any) -> date | None:
    try:
        return date.fromisoformat(str(raw)[:10]) if raw else None
    except ValueError:
        return None


def compute_vanished_labels(
    settings: Settings, desired: Mapping[str, Desired], snapshot: Mapping[str, SnapshotEntry]
) -> list[str]:
    """Group rules whose label matches nobody in a full read although the snapshot has members
    of their group: the label is likely no longer in its Hibob list (renamed or removed)."""
    found = []
    for rule in settings.mapping.groups:
        group = GroupRole(rule.group_id, rule.role)
        known = [d for d in desired.values() if d.groups is not None]
        if not known:
            continue  # withheld: says nothing about the label
        now = sum(1 for d in known if group in (d.groups or ()))
        before = sum(
            1
            for e in snapshot.values()
            if e.is_linked and e.state is not None and group in e.state.groups
        )
        if before and not now:
            found.append(
                f"mapping.groups: label {rule.label!r} of {rule.field} matches nobody now "
                f"({before} matched before): no longer in its Hibob list? (reconciler check)"
            )
    return found
