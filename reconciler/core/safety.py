"""Pure: the safety limits of product §3 over a plan. What would cut people off is held when
the read is untrustworthy, when it was held before, or over a breaker:

- deactivations, and scheduled deactivations (a `toBeDeactivatedAt` to set, which 360Learning
  carries out by itself later), against `sync.max_deactivations` and the share of managed
  active users (above `sync.deactivation_ratio_min_count`), over a rolling window;
- group membership removals, against `sync.max_membership_removals` and the same share of
  the managed memberships (a renamed Hibob list item must not empty a group).

A held action's other writes still go; released ones go and leave the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from reconciler.core.inputs import Limits, PlanInput
from reconciler.core.models import Action, Deactivate, Hold, Plan, Update, Upsert

SCHEDULE = "toBeDeactivatedAt"
"""The 360Learning attribute of a scheduled deactivation (`mapping.deactivate_on_last_day`)."""
SETTINGS_CHANGED = (
    "settings changed: the previous settings would not cut these people off over the same "
    "read (reconciler preview shows why; reconciler release lets them go)"
)
HELD_EARLIER = (
    "held earlier by a safety limit: waiting for an admin to release it (reconciler release)"
)


def compute_safety(plan: Plan, data: PlanInput, limits: Limits) -> Plan:
    plan = _hold_cuts(plan, data, limits)
    return _hold_removals(plan, data, limits)


def _hold_cuts(plan: Plan, data: PlanInput, limits: Limits) -> Plan:
    cuts = [a for a in plan.actions if _is_cut(a)]
    if not cuts:
        return plan
    others = _without(plan.actions, cuts)
    if data.read_problem:
        return _hold(plan, others, cuts, data.read_problem, _without_schedule, is_releasable=False)
    if data.previously_cut is not None:
        # Cut off only because the settings changed (a scope typo, a policy flipped): held.
        changed = [
            a
            for a in cuts
            if a.hibob_id not in data.previously_cut
            and not (data.allow_deactivations or a.hibob_id in data.released)
        ]
        if changed:
            cuts = list(_without(cuts, changed))
            plan = _hold(
                plan,
                _without(plan.actions, changed),
                changed,
                SETTINGS_CHANGED,
                _without_schedule,
            )
            others = _without(plan.actions, cuts)
            if not cuts:
                return plan
    go, held, reason = _split(cuts, data, lambda fresh: _breaker_reason(len(fresh), data, limits))
    if not held:
        return replace(plan, actions=others + go)
    return _hold(plan, others + go, held, reason or HELD_EARLIER, _without_schedule)


def _hold_removals(plan: Plan, data: PlanInput, limits: Limits) -> Plan:
    removing = [a for a in plan.actions if isinstance(a, Update) and a.remove_groups]
    if not removing:
        return plan
    others = _without(plan.actions, removing)

    def reason_for(fresh: Sequence[Action]) -> str | None:
        count = sum(len(a.remove_groups) for a in fresh if isinstance(a, Update))
        return _removals_reason(count, data, limits)

    go, held, reason = _split(removing, data, reason_for)
    if not held:
        return replace(plan, actions=others + go)
    return _hold(plan, others + go, held, reason or HELD_EARLIER, _without_removals)


def _split(
    actions: Sequence[Action], data: PlanInput, reason_for: Callable[[Sequence[Action]], str | None]
) -> tuple[tuple[Action, ...], list[Action], str | None]:
    """(what goes, what is held, why): released ones go (marked, so they leave the window),
    ones held before stay held, and fresh ones are held when `reason_for` them says so."""

    def is_released(action: Action) -> bool:
        return data.allow_deactivations or action.hibob_id in data.released

    released = [replace(a, is_released=True) for a in actions if is_released(a)]
    waiting = [a for a in actions if not is_released(a)]
    sticky = [a for a in waiting if a.hibob_id in data.held_ids]
    fresh = list(_without(waiting, sticky))
    reason = reason_for(fresh)
    held = sticky + (fresh if reason else [])
    return tuple(released) + _without(waiting, held), held, reason


def _without(actions: Iterable[Action], excluded: Iterable[Action]) -> tuple[Action, ...]:
    """`actions` but those in `excluded` (the same objects, filtered from them): by identity,
    in linear time (`a not in list` compared whole dataclasses, quadratic in a mass change)."""
    gone = {id(a) for a in excluded}
    return tuple(a for a in actions if id(a) not in gone)


def is_cut(action: Action) -> bool:
    """A deactivation or a scheduled deactivation: what cuts someone off."""
    return _is_cut(action)


def _is_cut(action: Action) -> bool:
    if isinstance(action, Deactivate):
        return not action.is_already_deleted
    return isinstance(action, Upsert) and bool(action.changes.get(SCHEDULE))


def _hold(
    plan: Plan,
    actions: tuple[Action, ...],
    held: Sequence[Action],
    reason: str,
    rest_of: Callable[[Upsert], Upsert | None],
    *,
    is_releasable: bool = True,
) -> Plan:
    """Hold `held`; what a held upsert writes besides (`rest_of` it) still goes."""
    rest = tuple(k for a in held if isinstance(a, Upsert) and (k := rest_of(a)))
    reasons = [r for r in (plan.held_reason, reason) if r]
    return replace(
        plan,
        actions=actions + rest,
        held=plan.held + tuple(_as_held(a) for a in held),
        held_reason="; ".join(dict.fromkeys(reasons)),
        is_held_releasable=plan.is_held_releasable and is_releasable,
    )


def _without_schedule(action: Upsert) -> Upsert | None:
    """The action minus its schedule; the snapshot then records no schedule, so every pass
    plans it again (and holds it) until an admin releases it. None when nothing is left."""
    changes = {k: v for k, v in action.changes.items() if k != SCHEDULE}
    state = action.state
    if state is not None:
        state = replace(state, attributes={**state.attributes, SCHEDULE: None})
    return _rest(replace(action, changes=changes, state=state))


def _without_removals(action: Upsert) -> Upsert | None:
    """The update minus its removals; the snapshot keeps the memberships, so every pass plans
    the removals again (and holds them) until an admin releases them."""
    state = action.state
    if state is not None:
        state = replace(state, groups=state.groups | action.remove_groups)
    return _rest(replace(action, remove_groups=frozenset(), state=state))


def _rest(action: Upsert) -> Upsert | None:
    return action if action.fields or not isinstance(action, Update) else None


def _as_held(action: Action) -> Hold:
    if isinstance(action, Deactivate):
        return Hold(action.hibob_id, action.email, action.reason, "deactivation")
    assert isinstance(action, Upsert)
    if isinstance(action, Update) and action.remove_groups and not action.changes.get(SCHEDULE):
        groups = ", ".join(sorted(f"{g.group_id} ({g.role})" for g in action.remove_groups))
        return Hold(
            action.hibob_id, action.email, f"leaves {groups}: {action.reason}", "membership removal"
        )
    return Hold(
        action.hibob_id,
        action.email,
        f"deactivation scheduled for {action.changes[SCHEDULE]}: {action.reason}",
        "scheduled deactivation",
    )


def _breaker_reason(count: int, data: PlanInput, limits: Limits) -> str | None:
    managed = (
        data.managed_counts[0]
        if data.managed_counts is not None
        else sum(1 for e in data.snapshot.values() if e.is_linked and e.is_active)
    )
    total = count + data.recent_deactivations
    window = (
        f" (with {data.recent_deactivations} in the last hour)" if data.recent_deactivations else ""
    )
    if count and total > limits.max_deactivations:
        return (
            f"{total} deactivations{window} exceed sync.max_deactivations "
            f"({limits.max_deactivations})"
        )
    if (
        count
        and managed
        and total > limits.deactivation_ratio_min_count
        and total / managed > limits.max_deactivation_ratio
    ):
        return (
            f"{total} deactivations{window} are {total / managed:.0%} of {managed} managed "
            f"active users, over sync.max_deactivation_ratio "
            f"({limits.max_deactivation_ratio:.0%})"
        )
    return None


def _removals_reason(count: int, data: PlanInput, limits: Limits) -> str | None:
    managed = (
        data.managed_counts[1]
        if data.managed_counts is not None
        else sum(
            len(e.state.groups - e.state.kept_groups)
            for e in data.snapshot.values()
            if e.is_linked and e.is_active and e.state is not None
        )
    )
    if count and count > limits.max_membership_removals:
        return (
            f"{count} group membership removals exceed sync.max_membership_removals "
            f"({limits.max_membership_removals}); a renamed Hibob list item? (reconciler check)"
        )
    if (
        count
        and managed
        and count > limits.deactivation_ratio_min_count
        and count / managed > limits.max_deactivation_ratio
    ):
        return (
            f"{count} group membership removals are {count / managed:.0%} of {managed} managed "
            f"memberships, over sync.max_deactivation_ratio ({limits.max_deactivation_ratio:.0%})"
            "; a renamed Hibob list item? (reconciler check)"
        )
    return None
