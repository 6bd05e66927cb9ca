"""Pure: every decision of a pass, as one function of (Hibob data, snapshot, 360Learning data).

`compute_plan` turns what a pass read into a Plan of typed actions, each with a human reason:
scope verdicts, email ambiguity, adoption candidates, quarantine, absence, safety limits.
Scheduled, targeted and `explain` passes call it with what they read and nothing else, so the
same data always gives the same decision. No I/O, no clock reads (`now` is an input).
The rules for one employee are `plan_employee`'s, who holds which account `plan_matching`'s,
what an account holds and will hold `plan_state`'s; this module runs them over the company.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from reconciler.core.desired import Desired
from reconciler.core.drift import category_of
from reconciler.core.inputs import Absence as Absence  # re-exported: the plan's inputs
from reconciler.core.inputs import ActualLinks as ActualLinks
from reconciler.core.inputs import Limits as Limits
from reconciler.core.inputs import PlanInput as PlanInput
from reconciler.core.models import (
    Action,
    Create,
    Deactivate,
    GroupRole,
    LearningUser,
    Plan,
    Problem,
    SnapshotEntry,
    Upsert,
)
from reconciler.core.plan_employee import _create_or_adopt, _plan_absent, _plan_one
from reconciler.core.plan_matching import (
    _live_account_of_leaver,
    _match_by_mail,
    _own_by_external_id,
    _unlinked_leavers,
    _unlinked_to_provision,
    compute_ambiguity,
)
from reconciler.core.plan_state import _quarantine_problem
from reconciler.core.safety import compute_safety


def compute_plan(data: PlanInput, limits: Limits) -> Plan:
    desired = compute_ambiguity(data)
    live = _live_after_pass(data, desired, limits)
    actions: list[Action] = []
    problems: list[Problem] = [
        Problem(
            h,
            data.desired[h].email if h in data.desired else None,
            "missing from Hibob's search, but a read by id returns it: the search was incomplete",
        )
        for h in sorted(data.search_incomplete)
    ]
    for hibob_id, wanted in sorted(desired.items()):
        entry = data.snapshot.get(hibob_id)
        if entry is not None and entry.is_quarantined(data.now) and not data.retry_quarantined:
            problems.append(_quarantine_problem(entry))
            continue
        if wanted.verdict in ("skip", "unknown"):
            problems.append(Problem(hibob_id, wanted.email, wanted.reason))
            continue
        if wanted.verdict == "active":  # values the rules refused: reported, the rest goes
            problems.extend(Problem(hibob_id, wanted.email, p) for p in wanted.mapping_problems)
        outcome = _plan_one(wanted, entry, data, limits, live)
        if isinstance(outcome, Upsert) and outcome.link_external_id and outcome.state:
            outcome = replace(outcome, state=replace(outcome.state, is_external_id_linked=True))
        if isinstance(outcome, Problem):
            problems.append(outcome)
        elif outcome is not None:
            actions.append(outcome)
    for hibob_id in sorted(data.absent - set(desired)):
        outcome = _plan_absent(data.snapshot.get(hibob_id), data)
        if isinstance(outcome, Problem):
            problems.append(outcome)
        elif outcome is not None:
            actions.append(outcome)
    return compute_safety(Plan(tuple(actions), tuple(problems)), data, limits)


def compute_unknown_share(desired: Mapping[str, Desired], limits: Limits) -> str | None:
    """Why a read that withholds a deciding field from too many employees must fail the pass."""
    unknown = [d for d in desired.values() if d.verdict == "unknown"]
    if not unknown or len(unknown) <= max(1.0, limits.max_unknown_ratio * len(desired)):
        return None
    field_id = Counter(d.unknown_field or "internal.status" for d in unknown).most_common(1)[0][0]
    category = category_of(field_id)
    return (
        f"Hibob withheld {field_id} for {len(unknown)} of {len(desired)} employees, over "
        f"sync.max_missing_field_ratio ({limits.max_unknown_ratio:.0%}): grant the service "
        f"user's permission group View on the {category!r} category (or fix the field id)"
    )


def compute_absence_checks(plan: Plan, data: PlanInput) -> list[str]:
    """Absent employees whose deactivation would go through: confirm each with a read by id."""
    return [
        a.hibob_id
        for a in plan.actions
        if isinstance(a, Deactivate)
        and a.hibob_id in data.absent
        and a.hibob_id not in data.absence
    ]


def compute_mail_lookups(data: PlanInput) -> list[str]:
    """Emails of employees to provision that have no link yet (candidates for adoption)."""
    return sorted({d.email for d in _unlinked_to_provision(data).values() if d.email})


def compute_adoption_candidates(data: PlanInput) -> dict[str, LearningUser]:
    """The single unlinked 360Learning user each unlinked employee would adopt (roles to read)."""
    found = {}
    for hibob_id, wanted in _unlinked_to_provision(data).items():
        assert wanted.email is not None
        mine, others = _match_by_mail(hibob_id, wanted.email, data)
        if not (mine or others) and (own := _own_by_external_id(hibob_id, data)):
            mine = [own]
        if len(mine) == 1:
            found[hibob_id] = mine[0]
    for hibob_id, wanted in _unlinked_leavers(data).items():
        if (user := _live_account_of_leaver(wanted, data)) is not None:
            found[hibob_id] = user
    return found


def compute_existing_user_decision(
    action: Create,
    users: Sequence[LearningUser],
    snapshot: Mapping[str, SnapshotEntry],
    roles: Mapping[str, frozenset[GroupRole]],
    now: datetime,
    limits: Limits,
) -> Action | Problem:
    """A create answered mailAlreadyUsed: adopt the user holding the mail, by the same rules.

    `users` are the 360Learning users whose mail equals the action's, compared locally.
    """
    assert action.state is not None and action.email is not None
    wanted = Desired(action.hibob_id, action.email, "active", action.reason)
    data = PlanInput(
        desired={},
        snapshot=snapshot,
        now=now,
        users_by_mail={action.email: users},
        candidate_roles=roles,
    )
    decision = _create_or_adopt(
        wanted, replace(action.state, kept_groups=frozenset()), data, limits
    )
    if isinstance(decision, Create):
        return Problem(
            action.hibob_id, action.email, "360Learning says the mail is used, but no user holds it"
        )
    return decision


def _live_after_pass(data: PlanInput, desired: Mapping[str, Desired], limits: Limits) -> set[str]:
    """Employees whose 360Learning account is active once this pass is applied."""
    live = {
        h for h, e in data.snapshot.items() if e.is_linked and e.is_active and h not in data.absent
    }
    for hibob_id, wanted in desired.items():
        if wanted.verdict == "active":
            live.add(hibob_id)
        elif wanted.verdict == "inactive" or (
            wanted.verdict == "out_of_scope" and limits.out_of_scope == "deactivate"
        ):
            live.discard(hibob_id)
    return live
