"""Pure: desired users vs the snapshot (or vs the actual 360Learning users) -> a Plan.

Called by reconcile; its Plan is what a dry run prints and what apply executes. Every action
carries a human-readable reason. Safety decisions (deactivation breaker, bad reads) are made
here too, so a dry run shows them. No I/O, no clock reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from reconciler.desired import Desired
from reconciler.models import GroupRole, LearningUser, SnapshotEntry

ActionKind = Literal["create", "adopt", "update", "reactivate", "deactivate"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    hibob_id: str
    email: str | None
    reason: str
    learning_user_id: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    activate: bool = False
    restore: bool = False  # re-POST the mail of a deleted user before the rest
    add_groups: frozenset[GroupRole] = frozenset()
    remove_groups: frozenset[GroupRole] = frozenset()
    manager: tuple[str | None, str | None] | None = None  # (old, new) manager hibob ids
    state: Mapping[str, Any] = field(default_factory=dict)  # snapshot state once applied

    @property
    def fields(self) -> list[str]:
        names = sorted(self.changes)
        if self.activate and self.kind != "create":
            names.append("status")
        if self.add_groups or self.remove_groups:
            names.append("groups")
        if self.manager is not None:
            names.append("manager")
        return names


@dataclass(frozen=True)
class Problem:
    hibob_id: str
    email: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    problems: tuple[Problem, ...] = ()
    held: tuple[Action, ...] = ()  # deactivations a safety limit kept back
    held_reason: str | None = None
    is_held_releasable: bool = True  # False: a bad read, which --allow-deactivations can't lift

    def counts(self) -> dict[str, int]:
        counts = Counter(a.kind for a in self.actions)
        if self.held:
            counts["held"] = len(self.held)
        if self.problems:
            counts["skipped"] = len(self.problems)
        return dict(sorted(counts.items()))

    @property
    def is_empty(self) -> bool:
        return not self.actions and not self.held


@dataclass(frozen=True)
class Limits:
    out_of_scope: str = "deactivate"
    activate_users: bool = True
    max_deactivations: int = 25
    max_deactivation_ratio: float = 0.05
    max_unknown_ratio: float = 0.1


@dataclass(frozen=True)
class PlanInput:
    desired: Mapping[str, Desired]  # every employee this pass read, by hibob id
    snapshot: Mapping[str, SnapshotEntry]
    candidates: Mapping[str, Sequence[LearningUser]] = field(default_factory=dict)
    actual: Mapping[str, LearningUser] | None = None  # full pass: every 360Learning user by id
    absent: frozenset[str] = frozenset()  # linked employees Hibob no longer returns
    read_problem: str | None = None  # why this read can't be trusted to deactivate anyone


def compute_plan(data: PlanInput, limits: Limits, *, allow_deactivations: bool = False,
                 release_ids: frozenset[str] = frozenset()) -> Plan:
    """`release_ids`: held deactivations an admin released (`reconciler release`): the breaker
    lets exactly these through and still counts every other one."""
    live = _live_after_pass(data, limits)
    actions: list[Action] = []
    problems: list[Problem] = []
    for hibob_id, desired in sorted(data.desired.items()):
        entry = data.snapshot.get(hibob_id)
        if desired.kind == "skip":
            problems.append(Problem(hibob_id, desired.email, desired.reason))
            continue
        action = _plan_one(desired, entry, data, limits, live)
        if isinstance(action, Problem):
            problems.append(action)
        elif action is not None:
            actions.append(action)
    for hibob_id in sorted(data.absent):
        entry = data.snapshot.get(hibob_id)
        if entry and entry.learning_user_id and _is_live(entry, data.actual):
            actions.append(_deactivate(entry, "no longer returned by Hibob (deleted or hidden)"))
    return apply_safety(Plan(tuple(actions), tuple(problems)), data, limits, allow_deactivations,
                        release_ids)


def _plan_one(desired: Desired, entry: SnapshotEntry | None, data: PlanInput, limits: Limits,
              live: set[str]) -> Action | Problem | None:
    linked = entry is not None and entry.learning_user_id is not None
    if linked and data.actual is not None and entry.learning_user_id not in data.actual:
        linked = False  # the linked user is gone from 360Learning: match again by email
    if desired.kind in ("inactive", "out_of_scope"):
        if desired.kind == "out_of_scope" and limits.out_of_scope == "ignore":
            return None
        if linked and _is_live(entry, data.actual):
            return _deactivate(entry, desired.reason)
        return None
    if desired.kind != "active":
        return None
    state = _state(desired, entry, live)
    if not linked:
        return _create_or_adopt(desired, state, data.candidates.get(desired.hibob_id, ()),
                                limits)
    assert entry is not None
    return _update(desired, entry, state, data, limits)


def _create_or_adopt(desired: Desired, state: dict, candidates: Sequence[LearningUser],
                     limits: Limits) -> Action | Problem:
    if len(candidates) > 1:
        return Problem(desired.hibob_id, desired.email,
                       f"ambiguous: {len(candidates)} 360Learning users have this email")
    groups = frozenset(GroupRole(g, r) for g, r in state["groups"])
    manager = (None, state["manager"]) if state["manager"] else None
    if not candidates:
        return Action("create", desired.hibob_id, desired.email, f"new: {desired.reason}",
                      changes={k: v for k, v in state["attributes"].items() if v is not None},
                      activate=limits.activate_users, add_groups=groups, manager=manager,
                      state=state)
    user = candidates[0]
    return Action(
        "adopt", desired.hibob_id, desired.email,
        f"existing 360Learning user with this email ({user.status}): {desired.reason}",
        learning_user_id=user.learning_user_id,
        changes=_changed(state["attributes"], user.attributes),
        activate=_needs_activation(user.status, limits), restore=user.is_deleted,
        add_groups=groups, manager=manager, state=state,
    )


def _update(desired: Desired, entry: SnapshotEntry, state: dict, data: PlanInput,
            limits: Limits) -> Action | None:
    before = dict(entry.state or {})
    actual = data.actual.get(entry.learning_user_id) if data.actual is not None else None
    was_inactive = actual.is_deleted if actual else not entry.is_active
    if was_inactive:
        # A restore drops groups and manager links: re-apply all of them.
        groups = frozenset(GroupRole(g, r) for g, r in state["groups"])
        return Action("reactivate", desired.hibob_id, desired.email,
                      f"active again: {desired.reason}", learning_user_id=entry.learning_user_id,
                      changes={k: v for k, v in state["attributes"].items() if v is not None},
                      activate=limits.activate_users, restore=True, add_groups=groups,
                      manager=(None, state["manager"]) if state["manager"] else None, state=state)
    seen = actual.attributes if actual else before.get("attributes", {})
    changes = _changed(state["attributes"], seen)
    old_groups = {GroupRole(g, r) for g, r in before.get("groups", [])}
    new_groups = {GroupRole(g, r) for g, r in state["groups"]}
    manager = None
    if state["manager"] != before.get("manager"):
        manager = (before.get("manager"), state["manager"])
    activate = actual is not None and _needs_activation(actual.status, limits)
    if not (changes or activate or old_groups != new_groups or manager):
        return None
    reason = "changed in Hibob" if actual is None else "differs from 360Learning (drift)"
    return Action("update", desired.hibob_id, desired.email, reason,
                  learning_user_id=entry.learning_user_id, changes=changes, activate=activate,
                  add_groups=frozenset(new_groups - old_groups),
                  remove_groups=frozenset(old_groups - new_groups), manager=manager, state=state)


def _live_after_pass(data: PlanInput, limits: Limits) -> set[str]:
    """Employees whose 360Learning account is active once this pass is applied."""
    live = {h for h, e in data.snapshot.items()
            if e.learning_user_id and e.is_active and h not in data.absent}
    for hibob_id, desired in data.desired.items():
        if desired.kind == "active":
            live.add(hibob_id)
        elif desired.kind == "inactive" or (desired.kind == "out_of_scope"
                                            and limits.out_of_scope == "deactivate"):
            live.discard(hibob_id)
    return live


def _state(desired: Desired, entry: SnapshotEntry | None, live: set[str]) -> dict:
    """The snapshot state after applying `desired`: unknown parts keep what was applied."""
    before = dict(entry.state or {}) if entry else {}
    attributes = {**before.get("attributes", {}), **desired.attributes}
    groups = (sorted([g.group_id, g.role] for g in desired.groups)
              if desired.groups is not None else before.get("groups", []))
    manager = before.get("manager")
    if desired.is_manager_known:
        target = desired.manager_hibob_id
        if target == desired.hibob_id:
            target = None
        # Link only a manager whose account is active after this pass (360Learning refuses a
        # deleted manager); a link made before the manager left stays, so nothing cascades.
        if target is not None and target not in live and target != manager:
            target = None
        manager = target
    return {"is_active": True, "attributes": attributes, "groups": groups, "manager": manager}


def _changed(wanted: Mapping[str, Any], seen: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if _norm(k, v) != _norm(k, seen.get(k))}


def _norm(key: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if key == "mail":
        return str(value).lower()
    if key == "toBeDeactivatedAt":
        return str(value)[:10]  # day granularity; 360Learning may add milliseconds
    return value


def _needs_activation(status: str, limits: Limits) -> bool:
    return limits.activate_users and status != "active"


def _is_live(entry: SnapshotEntry | None, actual: Mapping[str, LearningUser] | None) -> bool:
    if entry is None or entry.learning_user_id is None:
        return False
    if actual is not None:
        user = actual.get(entry.learning_user_id)
        return user is not None and not user.is_deleted
    return entry.is_active


def _deactivate(entry: SnapshotEntry, reason: str) -> Action:
    state = {**(entry.state or {}), "is_active": False}
    return Action("deactivate", entry.hibob_id, entry.email, reason,
                  learning_user_id=entry.learning_user_id, state=state)


def apply_safety(plan: Plan, data: PlanInput, limits: Limits, allow: bool,
                 release_ids: frozenset[str] = frozenset()) -> Plan:
    """Hold every deactivation when the read is untrustworthy or the breaker trips (§3)."""
    deactivations = [a for a in plan.actions if a.kind == "deactivate"]
    if not deactivations:
        return plan
    others = tuple(a for a in plan.actions if a.kind != "deactivate")
    released = tuple(a for a in deactivations if a.hibob_id in release_ids)
    reason = data.read_problem or _unknown_share_problem(data, limits)
    if reason:
        return replace(plan, actions=others, held=tuple(deactivations), held_reason=reason,
                       is_held_releasable=False)
    if allow:
        return plan
    deactivations = [a for a in deactivations if a.hibob_id not in release_ids]
    others += released
    managed = sum(1 for e in data.snapshot.values() if e.learning_user_id and e.is_active)
    count = len(deactivations)
    if count > limits.max_deactivations:
        reason = f"{count} deactivations exceed sync.max_deactivations ({limits.max_deactivations})"
    elif managed and count / managed > limits.max_deactivation_ratio:
        reason = (f"{count} deactivations are {count / managed:.0%} of {managed} managed active "
                  f"users, over sync.max_deactivation_ratio ({limits.max_deactivation_ratio:.0%})")
    if reason:
        return replace(plan, actions=others, held=tuple(deactivations), held_reason=reason)
    return plan


def _unknown_share_problem(data: PlanInput, limits: Limits) -> str | None:
    if len(data.desired) < 10:
        return None  # targeted and tiny passes: a share means nothing
    unknown = sum(1 for d in data.desired.values() if d.kind == "unknown")
    if unknown / len(data.desired) > limits.max_unknown_ratio:
        return (f"deciding fields missing for {unknown} of {len(data.desired)} employees "
                "(Hibob permissions?): no deactivation until the read is complete")
    return None
