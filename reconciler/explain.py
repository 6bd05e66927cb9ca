"""`reconciler explain EMPLOYEE`: why the reconciler wants what it wants for one employee.

Called by the CLI only. Reads Hibob (one single-employee read) and the store, and computes the
targeted plan without applying it; `--apply` then runs the targeted pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from reconciler.desired import compute_desired, required_fields
from reconciler.plan import Upsert
from reconciler.reconcile import PassOptions, find_employee, read_and_plan
from reconciler.scope import compute_condition, compute_in_scope
from reconciler.wiring import Services


def explain_employee(services: Services, identifier: str, now: datetime, out: TextIO) -> None:
    settings, store = services.settings, services.store
    fields = required_fields(settings)
    employee, hibob_id, note = find_employee(services, identifier, fields)
    if note:
        print(note, file=out)
    if employee is None:
        print(f"{hibob_id or identifier}: Hibob does not return this employee (deleted, or "
              "hidden from the service user)", file=out)
    else:
        print(f"employee {employee.hibob_id} ({employee.email or 'no email'})", file=out)
        print("fields read from Hibob:", file=out)
        for field_id in fields:
            if not employee.has(field_id):
                shown = "(not returned: unknown)"
            else:
                label = employee.label(field_id)
                raw = employee.value(field_id)
                shown = repr(raw) if label in (None, str(raw)) else f"{raw!r} = {label!r}"
            print(f"  {field_id:28} {shown}", file=out)
        _print_scope(services, employee, out)
        desired = compute_desired(employee, settings, now,
                                  compute_in_scope(settings.scope.groups, employee))
        print(f"desired: {desired.verdict} — {desired.reason}", file=out)
        for key, value in sorted(desired.attributes.items()):
            print(f"  {key:18} {value!r}", file=out)
        groups = sorted((g.group_id, g.role) for g in desired.groups or ())
        print(f"  {'groups':18} {groups if desired.groups is not None else 'unknown'}",
              file=out)
        if desired.is_manager_known:
            print(f"  {'manager':18} {desired.manager_hibob_id or 'none'}", file=out)
    hibob_id = hibob_id or identifier
    entry = store.get_entry(hibob_id)
    if entry:
        state = "active" if entry.is_active else "deactivated"
        print(f"link: 360Learning user {entry.learning_user_id or '(none)'}, last applied "
              f"state {state}" + (f", {entry.failures} failures: {entry.last_error}"
                                  if entry.failures else ""), file=out)
    else:
        print("link: none yet (never applied)", file=out)
    if employee is not None or entry is not None:
        plan = read_and_plan(services, "targeted", now=now,
                             options=PassOptions(employee=hibob_id))
        for action in (*plan.actions, *plan.held):
            written = action.changes if isinstance(action, Upsert) else {}
            changes = ", ".join(f"{k}={v!r}" for k, v in sorted(written.items()))
            print(f"next: {action.kind} [{', '.join(action.fields)}] {changes} — "
                  f"{action.reason}", file=out)
        for problem in plan.problems:
            print(f"next: skipped — {problem.reason}", file=out)
        if plan.is_empty and not plan.problems:
            print("next: nothing to do", file=out)
    print("last actions:", file=out)
    for row in store.list_journal(hibob_id=hibob_id)[-10:]:
        print(f"  {row['at']}  {row['action']} [{', '.join(row['fields'])}]  {row['outcome']}"
              f"  {row['reason']}", file=out)


def _print_scope(services: Services, employee, out: TextIO) -> None:
    groups = services.settings.scope.groups
    if not groups:
        print("scope: no conditions (everyone)", file=out)
        return
    print(f"scope: {compute_in_scope(groups, employee)}", file=out)
    for number, group in enumerate(groups, start=1):
        for condition in group.conditions:
            result = compute_condition(condition, employee)
            operand = condition.value if condition.value is not None else condition.values
            verdict = "unknown" if not result.is_known else str(result.matches).lower()
            print(f"  group {number}: {condition.field} {condition.op} {operand!r} "
                  f"(value {result.label!r}) -> {verdict}", file=out)
