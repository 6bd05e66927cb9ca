"""`reconciler check`'s Hibob probes: the token, the configured fields and their categories, and the
labels of the list fields the settings name (with a "did you mean" hint).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from reconciler.clients.hibob import HibobClient
from reconciler.commands.check_lines import CheckReport
from reconciler.config import Settings
from reconciler.core.desired import required_fields
from reconciler.core.models import Employee
from reconciler.errors import ApiError

CRITICAL_FIELDS = (
    "root.id",
    "root.email",
    "internal.status",
    "internal.lifecycleStatus",
    "work.startDate",
)


# -- Hibob ----------------------------------------------------------------------------------


def check_hibob(settings: Settings, hibob: HibobClient, report: CheckReport) -> None:
    fields = required_fields(settings)
    try:
        metadata = {str(f["id"]): f for f in hibob.list_fields()}
        report.ok(f"Hibob credentials work; field metadata lists {len(metadata)} fields")
        employees = hibob.search_employees(fields)
    except ApiError as exc:
        report.fail(f"Hibob: {exc}")
        return
    report.check(bool(employees), f"Hibob search returned {len(employees)} employees")
    named = configured_fields(settings)
    for field_id in fields:
        check_field(field_id, named.get(field_id, []), metadata, employees, report)
    statuses = {e.value("internal.status") for e in employees}
    if "Inactive" in statuses:
        report.ok("Hibob returns inactive people (access rights cover all lifecycle statuses)")
    elif employees:
        # A young company may really have no leaver yet; access rights that hide inactive
        # people look the same from here.
        report.warn(
            "Hibob returns no inactive people: unless nobody ever left, give the service "
            'user access to every lifecycle status ("Select people by condition")'
        )
    check_labels(settings, hibob, metadata, employees, report)


def configured_fields(settings: Settings) -> dict[str, list[str]]:
    """Field id -> the settings naming it (scope conditions, mapping, extra fields)."""
    named: dict[str, list[str]] = {}
    for g, group in enumerate(settings.scope.groups):
        for c, condition in enumerate(group.conditions):
            named.setdefault(condition.field, []).append(f"scope.groups[{g}].conditions[{c}]")
    for r, rule in enumerate(settings.mapping.groups):
        named.setdefault(rule.field, []).append(f"mapping.groups[{r}]")
    for setting in ("organization", "lang_field"):
        if field_id := getattr(settings.mapping, setting):
            named.setdefault(field_id, []).append(f"mapping.{setting}")
    for target, field_rule in settings.mapping.fields.items():
        for field_id in field_rule.placeholders():
            named.setdefault(field_id, []).append(f"mapping.fields.{target}")
    for number, custom in enumerate(settings.mapping.custom_fields):
        for field_id in custom.placeholders():
            named.setdefault(field_id, []).append(f"mapping.custom_fields[{number}]")
    for field_id in settings.hibob.extra_fields:
        named.setdefault(field_id, []).append("hibob.extra_fields")
    return named


def check_field(
    field_id: str,
    settings_naming: list[str],
    metadata: dict[str, Any],
    employees: list[Employee],
    report: CheckReport,
) -> None:
    where = f" ({', '.join(settings_naming)})" if settings_naming else ""
    meta = metadata.get(field_id)
    if meta is None:
        report.fail(
            f"Hibob field {field_id}{where} does not exist in Hibob"
            + _did_you_mean(field_id, metadata)
        )
        return
    if not employees or any(e.has(field_id) for e in employees):
        return
    category = meta.get("categoryDisplayName") or meta.get("categoryId") or "?"
    text = (
        f"Hibob field {field_id}{where} is never returned: grant the service user View on "
        f"the {category!r} category"
    )
    if field_id in CRITICAL_FIELDS or settings_naming:
        report.fail(text)
    else:
        report.warn(text + " (optional)")


def check_labels(
    settings: Settings,
    hibob: HibobClient,
    metadata: dict[str, Any],
    employees: list[Employee],
    report: CheckReport,
) -> None:
    """Every label a scope condition or group rule compares against exists in Hibob."""
    lists: dict[str, set[str] | None] = {}
    for setting, field_id, labels in configured_labels(settings):
        meta = metadata.get(field_id)
        if meta is None or not labels:
            continue  # an unknown field is reported by check_field
        list_id = (meta.get("typeData") or {}).get("listId")
        if list_id:
            if list_id not in lists:
                lists[list_id] = _read_list(hibob, list_id, report)
            known = lists[list_id]
            if known is None:
                continue
            missing, found = f"is not in Hibob list {list_id!r}", f"exist in Hibob list {list_id!r}"
            complain = report.fail
        else:
            # A plain-text field has no list to compare with: only the labels employees hold,
            # and a label nobody holds yet may be fine (a site about to open).
            known = {label for e in employees if (label := e.label(field_id))}
            missing, found = "is held by no employee", "are held by employees"
            complain = report.warn
        for label in labels:
            if label not in known:
                complain(
                    f"label {label!r} of {field_id} ({setting}) {missing}"
                    + _did_you_mean(label, known)
                )
        if all(label in known for label in labels):
            report.ok(f"labels of {field_id} ({setting}) {found}")


def configured_labels(settings: Settings) -> Iterable[tuple[str, str, list[str]]]:
    for g, group in enumerate(settings.scope.groups):
        for c, condition in enumerate(group.conditions):
            labels = condition.values or ([condition.value] if condition.value is not None else [])
            yield f"scope.groups[{g}].conditions[{c}]", condition.field, labels
    for r, rule in enumerate(settings.mapping.groups):
        yield f"mapping.groups[{r}]", rule.field, [rule.label]


def _read_list(hibob: HibobClient, list_id: str, report: CheckReport) -> set[str] | None:
    try:
        return set(hibob.get_named_list(list_id).values())
    except ApiError as exc:
        report.warn(f"cannot read Hibob list {list_id!r} to check labels: {exc}")
        return None


def _did_you_mean(wanted: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(wanted, list(known), n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""
