"""`reconciler explain EMPLOYEE`: why the reconciler wants what it wants for one employee, and
what 360Learning holds now.

Called by the CLI only. Reads Hibob (one single-employee read), the linked 360Learning user
(one read) and the store, and computes the targeted plan without applying it. When an API
cannot be reached, or with `--offline` (no credentials, no network), it shows what the database
knows: the link, the last applied state, quarantine, held deactivation and the journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TextIO

from reconciler.commands.shadow import format_disagreement
from reconciler.commands.terminal import format_history_row, format_value
from reconciler.core.custom_fields import (
    ResolvedCustomFields,
    custom_key,
    held_values,
    is_custom_key,
    resolve_custom_fields,
    with_custom_values,
)
from reconciler.core.desired import compute_desired, required_fields
from reconciler.core.mapping import default_rules, describe_rule
from reconciler.core.models import AppliedState, Employee, LearningUser, SnapshotEntry, Upsert
from reconciler.core.scope import compute_condition, compute_in_scope
from reconciler.core.shadow import compute_row
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ApiError, ReconcilerError
from reconciler.passes.context import PassContext
from reconciler.passes.custom_fields import cached_definitions, load_custom_fields
from reconciler.passes.reconcile import PassOptions, find_employee, read_and_plan
from reconciler.store.database import Store, utc_text

SHOWN_ACTIONS = 10


def explain_employee(
    services: PassContext | None, store: Store, identifier: str, now: datetime, out: TextIO
) -> int:
    """Print the explanation (`services` None: offline); 0, or 1 when neither Hibob nor the
    database knows the employee."""
    employee, found_id, note, hibob_error = (
        _read_employee(services, identifier)
        if services
        else (None, None, None, "offline: no API is read")
    )
    known = store.find_employee_ids(identifier)
    hibob_id = found_id or (known[0] if known else identifier)
    entry = store.get_entry(hibob_id)
    if employee is None and entry is None and not known:
        where = "Hibob cannot be read" if hibob_error else "Hibob does not return this employee"
        print(
            f"reconciler: employee {identifier} is unknown: {where}, and the database has "
            "never seen it (give a Hibob id or an email)",
            file=out,
        )
        return 1
    if note:
        print(note, file=out)
    if services is None:
        print(f"offline: what the database knows about {identifier} (no API read)", file=out)
    elif hibob_error:
        print(
            f"Hibob: cannot read {identifier} ({hibob_error}); below is what the database knows",
            file=out,
        )
    elif employee is None:
        print(
            f"{identifier}: Hibob does not return this employee (deleted, or hidden from the "
            f"service user); known here as employee {hibob_id}",
            file=out,
        )
    else:
        _print_employee(services, employee, now, out)
    _print_link(services, entry, out, store)
    _print_safety(store, hibob_id, entry, now, out)
    _print_shadow(store, hibob_id, now, out)
    if services is not None and not hibob_error:
        _print_next(services, hibob_id, now, out)
    print("last actions:", file=out)
    rows = store.list_journal(hibob_id=hibob_id, limit=None)[-SHOWN_ACTIONS:]
    for row in rows:
        print("  " + format_history_row(row), file=out)
    if not rows:
        print("  none", file=out)
    return 0


def _print_shadow(store: Store, hibob_id: str, now: datetime, out: TextIO) -> None:
    """Shadow mode: this person's open disagreements with what 360Learning holds."""
    records = store.list_disagreements(hibob_id=hibob_id, is_open=True)
    if not records:
        return
    print("shadow: open disagreements:", file=out)
    for record in records:
        print(f"  {format_disagreement(compute_row(record, now))}", file=out)


def _read_employee(
    services: PassContext, identifier: str
) -> tuple[Employee | None, str | None, str | None, str | None]:
    """(employee, its Hibob id, a note about a former email, why Hibob could not be read)."""
    try:
        employee, hibob_id, note = find_employee(
            services, identifier, required_fields(services.settings)
        )
        return employee, hibob_id, note, None
    except ApiError as exc:
        return None, None, None, str(exc)


def _print_employee(services: PassContext, employee: Employee, now: datetime, out: TextIO) -> None:
    settings = services.settings
    print(f"employee {employee.hibob_id} ({employee.email or 'no email'})", file=out)
    print("fields read from Hibob:", file=out)
    for field_id in required_fields(settings):
        print(f"  {field_id:28} {_shown_field(employee, field_id)}", file=out)
    _print_scope(services, employee, out)
    custom = _custom_fields(services, out)
    desired = with_custom_values(
        compute_desired(employee, settings, now, compute_in_scope(settings.scope.groups, employee)),
        employee,
        custom,
    )
    print(f"desired: {desired.verdict} — {desired.reason}", file=out)
    rules: dict[str, Any] = dict(default_rules(settings))
    rules.update({custom_key(d): r for r, d in custom.rules})
    names = _custom_names(services.store)
    for key, value in sorted(desired.attributes.items()):
        shown = f'"{value}"' if value not in (None, "") else "(empty: cleared)"
        rule = rules.get(key)
        source = (
            describe_rule(rule, employee)
            if rule is not None
            else _FIXED_SOURCES.get(key, "a fixed rule")
        )
        print(f"  {names.get(key, key)} = {shown}  ← {source}", file=out)
    for problem in desired.mapping_problems:
        print(f"  not sent: {problem}", file=out)
    if desired.verdict != "active":
        return
    groups = (
        ", ".join(
            f"{g.group_id} as {g.role}"
            for g in sorted(desired.groups, key=lambda g: (g.group_id, g.role))
        )
        or "(none)"
        if desired.groups is not None
        else "unknown (a group rule's field was not returned)"
    )
    print(f"  {'groups':18} {groups}", file=out)
    if desired.is_manager_known:
        print(f"  {'manager':18} {desired.manager_hibob_id or '(none)'}", file=out)


_FIXED_SOURCES = {
    "mail": "root.email, trimmed and lower-cased (the identity)",
    "toBeDeactivatedAt": "the last day or termination date (mapping.deactivate_on_last_day)",
}


def _custom_fields(services: PassContext, out: TextIO) -> ResolvedCustomFields:
    try:
        return load_custom_fields(
            services.learning, services.store, services.settings, refresh=False, record=False
        )
    except ApiError as exc:
        print(f"custom fields: cannot read their definitions ({exc})", file=out)
        return ResolvedCustomFields()


def _custom_names(store: Store) -> dict[str, str]:
    """`customField:<id>` -> "<name> (custom field)", from the store's copy of the definitions."""
    known = cached_definitions(store)
    return {custom_key(d): f"{d.name} (custom field)" for d in known or []}


def _shown_field(employee: Employee, field_id: str) -> str:
    if not employee.has(field_id):
        return "(not returned: unknown, so never cleared)"
    raw, label = employee.value(field_id), employee.label(field_id)
    if label is not None and label != str(raw) and raw not in (None, ""):
        return f"{label} (id {format_value(raw)})"
    return format_value(raw)


def _print_scope(services: PassContext, employee: Employee, out: TextIO) -> None:
    groups = services.settings.scope.groups
    if not groups:
        print("scope: no conditions (everyone is in scope)", file=out)
        return
    in_scope = compute_in_scope(groups, employee)
    verdict = "unknown" if in_scope is None else "in scope" if in_scope else "out of scope"
    print(f"scope: {verdict} (groups are ORed, conditions in a group ANDed)", file=out)
    for number, group in enumerate(groups, start=1):
        for condition in group.conditions:
            result = compute_condition(condition, employee)
            operand = condition.value if condition.value is not None else condition.values
            shown = "" if operand is None else f" {format_value(operand)}"
            verdict_text = "unknown" if not result.is_known else str(result.matches).lower()
            print(
                f"  group {number}: {condition.field} {condition.op}{shown} "
                f"(value: {format_value(result.label)}) -> {verdict_text}",
                file=out,
            )


def _print_link(
    services: PassContext | None, entry: SnapshotEntry | None, out: TextIO, store: Store
) -> None:
    if entry is None or entry.learning_user_id is None:
        print("link: none yet (never created or adopted)", file=out)
        return
    applied = "active" if entry.is_active else "deactivated"
    print(
        f"link: 360Learning user {entry.learning_user_id}, last applied state {applied}", file=out
    )
    names = _custom_names(store)
    for key, value in sorted(entry.state.attributes.items() if entry.state else ()):
        print(f"  {names.get(key, key):18} {format_value(value)}", file=out)
    if services is None:
        return
    try:
        user = services.learning.get_user(entry.learning_user_id)
    except ReconcilerError as exc:
        print(f"360Learning now: cannot read the user ({exc})", file=out)
        return
    if user is None:
        print(
            "360Learning now: the user does not exist any more (a full resync creates or "
            "adopts one again)",
            file=out,
        )
        return
    user = _with_held_custom_values(services, entry, user, names, out)
    differences = compute_differences(entry.state, user)
    verdict = (
        "matches the last applied state"
        if not differences
        else "differs from the last applied state (a full resync repairs it)"
    )
    print(f"360Learning now: {user.status}, {verdict}", file=out)
    for name, there, applied_value in differences:
        print(
            f"  {names.get(name, name):18} {format_value(there)} in 360Learning, "
            f"{format_value(applied_value)} last applied",
            file=out,
        )


def _with_held_custom_values(
    services: PassContext,
    entry: SnapshotEntry,
    user: LearningUser,
    names: Mapping[str, str],
    out: TextIO,
) -> LearningUser:
    """The user with the custom-field values it holds (one read), which are printed."""
    managed = {k for k in (entry.state.attributes if entry.state else {}) if is_custom_key(k)}
    configured = resolve_custom_fields(services.settings, cached_definitions(services.store) or [])
    managed |= {custom_key(d) for d in configured.definitions}
    if not services.settings.mapping.custom_fields and not managed:
        return user
    try:
        held = held_values(services.learning.list_custom_values(user.learning_user_id))
    except ReconcilerError as exc:
        print(f"custom fields held in 360Learning: cannot read them ({exc})", file=out)
        return user
    print("custom fields held in 360Learning:", file=out)
    for key, value in sorted(held.items(), key=lambda kv: names.get(kv[0], kv[0])):
        how = "managed" if key in managed else "not managed: kept"
        print(f"  {names.get(key, key)} = {format_value(value)} ({how})", file=out)
    if not held:
        print("  none", file=out)
    return replace(user, attributes={**user.attributes, **{k: held.get(k) for k in managed}})


def compute_differences(
    state: AppliedState | None, user: LearningUser
) -> list[tuple[str, Any, Any]]:
    """(name, in 360Learning, last applied) for each managed value that differs."""
    found: list[tuple[str, Any, Any]] = []
    is_active = user.status in ("active", "invited")
    was_active = state is not None and state.is_active
    if was_active != is_active:
        found.append(("status", user.status, "active" if was_active else "deleted"))
    attributes: Mapping[str, Any] = state.attributes if state else {}
    for key, applied in sorted(attributes.items()):
        there = user.attributes.get(key)
        if _comparable(key, there) != _comparable(key, applied):
            found.append((key, there, applied))
    return found


def _comparable(key: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if key == "mail":
        return str(value).lower()
    if key == "toBeDeactivatedAt":
        return str(value)[:10]
    return value


def _print_safety(
    store: Store, hibob_id: str, entry: SnapshotEntry | None, now: datetime, out: TextIO
) -> None:
    if entry and entry.quarantined_until is not None and entry.is_quarantined(now):
        until = utc_text(entry.quarantined_until)
        print(
            f"quarantine: until {until} after {entry.failures} failures: "
            f"{entry.last_error} (lift with: reconciler quarantine --clear {hibob_id})",
            file=out,
        )
    elif entry and entry.failures:
        print(f"quarantine: no ({entry.failures} recent failures: {entry.last_error})", file=out)
    else:
        print("quarantine: no", file=out)
    held = next((row for row in store.list_held() if row.hibob_id == hibob_id), None)
    if held:
        print(
            f"deactivation: held since {held.held_at}: {held.reason} (review with: "
            "reconciler release)",
            file=out,
        )


def _print_next(services: PassContext, hibob_id: str, now: datetime, out: TextIO) -> None:
    try:
        plan = read_and_plan(
            services, PassKind.TARGETED, now=now, options=PassOptions(employee=hibob_id)
        )
    except ReconcilerError as exc:
        print(f"next: cannot plan ({exc})", file=out)
        return
    names = _custom_names(services.store)
    for action in plan.actions:
        changes = (
            ""
            if not (isinstance(action, Upsert) and action.kind == "update")
            else ", ".join(
                f"{names.get(k, k)} → {format_value(v)}" for k, v in sorted(action.changes.items())
            )
        )
        print(
            f"next: {action.kind} {', '.join(names.get(f, f) for f in action.fields) or ''}"
            f"{' (' + changes + ')' if changes else ''} — {action.reason}",
            file=out,
        )
    for hold in plan.held:
        print(f"next: {hold.what}, but held — {plan.held_reason}; {hold.reason}", file=out)
    for problem in plan.problems:
        print(f"next: skipped — {problem.reason}", file=out)
    if plan.is_empty and not plan.problems:
        print("next: nothing to do", file=out)
