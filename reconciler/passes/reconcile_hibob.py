"""Reconcile, the Hibob side: what Hibob holds for a pass, and the absences it confirms.

One search for everyone (full and incremental passes) or one employee by id or any email it
has had (targeted passes, `explain`); the fields withheld by visibility drift; the desired
state of each employee read; the twins a targeted pass must know about; and the plan whose
absences the safety limits would let through, each confirmed by a read by id. Part of
`reconcile`; it reads Hibob and the store, and writes only the field-fill shares it saw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from reconciler.core.custom_fields import ResolvedCustomFields, with_custom_values
from reconciler.core.desired import Desired, compute_desired
from reconciler.core.drift import (
    compute_fill,
    compute_withheld_fields,
    describe_withheld,
    rule_fields,
    without_fields,
)
from reconciler.core.models import Employee, Plan, Problem, SnapshotEntry, Update
from reconciler.core.plan import Absence, PlanInput, compute_absence_checks, compute_plan
from reconciler.core.safety import is_cut
from reconciler.core.scope import compute_in_scope
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ApiAuthFailed, ReconcilerError
from reconciler.passes.context import PassContext
from reconciler.passes.reconcile_settings import NO_CUSTOM_FIELDS, PassOptions

log = logging.getLogger("reconciler.passes.reconcile")  # the pass's records keep one logger name
FIELD_FILL_KEY = "field_fill"  # service_state: share of employees with each rule field filled
WITHHELD_KEY = "withheld_fields"  # service_state: the fields the last full read withheld


def read_employees(
    services: PassContext,
    kind: PassKind,
    fields: list[str],
    snapshot: dict[str, SnapshotEntry],
    options: PassOptions = PassOptions(),
) -> tuple[list[Employee], list[Problem]]:
    """What Hibob holds for the pass: everyone (one search) or the targeted employee."""
    problems: list[Problem] = []
    if kind == PassKind.TARGETED:
        assert options.employee is not None
        employees, problems = _read_one(services, options.employee, fields, snapshot)
    else:
        employees = services.hibob.search_employees(fields)
        problems = [
            Problem(
                "",
                None,
                "Hibob returned an employee without root.id (check the "
                "permission group's root category): not written",
            )
            for e in employees
            if not e.hibob_id
        ]
        employees = [e for e in employees if e.hibob_id]
    return employees, problems


def _withhold_drifted(
    services: PassContext, employees: list[Employee], kind: PassKind, record: bool
) -> tuple[list[Employee], list[Problem]]:
    """Field visibility drift: fields the rules use that most employees had and few have now
    are unknown for this pass (targeted passes reuse the last full read's verdict)."""
    store, fields = services.store, rule_fields(services.settings)
    state = store.load_service_state()
    before: dict[str, float] = json.loads(state.get(FIELD_FILL_KEY) or "{}")
    if kind == PassKind.TARGETED:
        names = [f for f in json.loads(state.get(WITHHELD_KEY) or "[]") if f in fields]
        return [without_fields(e, names) for e in employees], []
    fill = compute_fill(employees, fields)
    withheld = compute_withheld_fields(before, fill, len(employees))
    if record:  # a withheld field keeps the share it had when it was last seen
        kept = {**fill, **{f: before[f] for f in withheld}}
        store.save_service_state(
            {FIELD_FILL_KEY: json.dumps(kept), WITHHELD_KEY: json.dumps(sorted(withheld))}
        )
    if not withheld:
        return employees, []
    for field_id, (was, now) in withheld.items():
        log.warning("%s", describe_withheld(field_id, was, now))
    return [without_fields(e, withheld) for e in employees], [
        Problem("", None, describe_withheld(f, was, now)) for f, (was, now) in withheld.items()
    ]


def _unseen_twins(
    services: PassContext, desired: Mapping[str, Desired], snapshot: Mapping[str, SnapshotEntry]
) -> dict[str, str]:
    """Other employees holding the email of someone a targeted pass may create or adopt: the
    store only knows the emails full searches saw, so Hibob is searched by that email (its
    search filters by email). Their emails make the plan treat the email as ambiguous."""
    wanted = {
        d.email: h
        for h, d in desired.items()
        if d.email and d.verdict == "active" and not (h in snapshot and snapshot[h].is_linked)
    }
    if not wanted:
        return {}
    found = services.hibob.search_employees(["root.email"], emails=sorted(wanted))
    return {
        e.hibob_id: e.email
        for e in found
        if e.hibob_id and e.email and e.email in wanted and wanted[e.email] != e.hibob_id
    }


def _compute_desired(
    services: PassContext,
    employees: list[Employee],
    now: datetime,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
) -> dict[str, Desired]:
    groups, settings = services.settings.scope.groups, services.settings
    read: dict[str, Employee] = {}
    twins: set[str] = set()
    for employee in employees:
        if read.setdefault(employee.hibob_id, employee) != employee:
            twins.add(employee.hibob_id)
    desired = {
        h: with_custom_values(
            compute_desired(e, settings, now, compute_in_scope(groups, e)), e, custom
        )
        for h, e in read.items()
    }
    for hibob_id in twins:  # which record is right is unknowable: write neither
        desired[hibob_id] = replace(
            desired[hibob_id],
            verdict="skip",
            reason="Hibob returned two different records with this id",
        )
    return desired


def _meets_a_breaker(plan: Plan) -> bool:
    """Whether the plan holds or lets through a cut-off or a membership removal."""
    return bool(plan.held) or any(
        is_cut(a) or (isinstance(a, Update) and a.remove_groups) for a in plan.actions
    )


def _plan_with_confirmed_absences(
    services: PassContext,
    data: PlanInput,
    fields: list[str],
    now: datetime,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
) -> tuple[Plan, PlanInput]:
    """Plan; confirm each absence the safety limits would let through by a read by id."""
    plan = compute_plan(data, services.limits)
    if not data.is_full_read and _meets_a_breaker(plan):
        # A targeted pass holds some rows only: the breaker counts everyone, in one query.
        data = replace(data, managed_counts=services.store.count_managed_both())
        plan = compute_plan(data, services.limits)
    checks = compute_absence_checks(plan, data)
    if not checks:
        return plan, data
    absence: dict[str, Absence] = dict(data.absence)
    present: list[Employee] = []
    for hibob_id in checks:
        try:
            found = services.hibob.get_employee(hibob_id, fields)
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            absence[hibob_id] = "unknown"  # "no permission to this employee": not absent
            continue
        if found is None:
            absence[hibob_id] = "confirmed"
        else:
            present.append(found)
    desired = {**data.desired, **_compute_desired(services, present, now, custom)}
    if present:
        log.warning(
            "Hibob's search did not return %d employees that a read by id returns: "
            "the search was incomplete",
            len(present),
        )
    data = replace(
        data,
        desired=desired,
        absence=absence,
        absent=data.absent - {e.hibob_id for e in present},
        search_incomplete=frozenset(e.hibob_id for e in present),
    )
    return compute_plan(data, services.limits), data


def find_employee(
    services: PassContext, identifier: str, fields: list[str]
) -> tuple[Employee | None, str | None, str | None]:
    """(the employee as Hibob returns it, its Hibob id, a note) for a Hibob id or any email
    the employee has had. An email Hibob does not know is resolved through the emails the
    store has seen; the note then says who last held it."""
    wanted, note = identifier.strip(), None
    if "@" in wanted:
        found = services.hibob.get_employee(wanted.lower(), fields)
        if found is not None:
            return found, found.hibob_id, None
        holders = services.store.find_employees_by_email(wanted)
        if not holders:
            return (
                None,
                None,
                (
                    f"{wanted}: no Hibob employee has this email, and no "
                    "employee known here ever had it"
                ),
            )
        wanted = holders[0]
        note = (
            f"{identifier.strip()} is not a current Hibob email; it was last held by "
            f"employee {wanted}"
        )
    return services.hibob.get_employee(wanted, fields), wanted, note


def _read_one(
    services: PassContext, identifier: str, fields: list[str], snapshot: dict[str, SnapshotEntry]
) -> tuple[list[Employee], list[Problem]]:
    """One employee by Hibob id or by any email it has had; never concludes absence."""
    found, hibob_id, note = find_employee(services, identifier, fields)
    if note:
        log.info("%s", note, extra={"employee_id": hibob_id})
    if found is not None:
        return [found], []
    if hibob_id is None:
        raise ReconcilerError(note or f"{identifier}: unknown employee")
    entry = snapshot.get(hibob_id) or services.store.get_entry(hibob_id)
    if entry is None:
        raise ReconcilerError(f"employee {hibob_id} is neither in Hibob nor known here")
    return [], [
        Problem(
            hibob_id,
            entry.email,
            (f"{note}; " if note else "") + "a read by id finds nobody; a targeted "
            "pass never concludes absence: the next full search decides",
        )
    ]
