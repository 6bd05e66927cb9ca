"""Pure: the plan for one employee, the rules `compute_plan` applies to each in turn.

Create, adopt, update, reactivate or deactivate (present, absent, or a leaver's unlinked account
in a migration), or the Problem that says why nothing is written. Called only by `core.plan`;
no I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.desired import Desired
from reconciler.core.inputs import Limits, PlanInput
from reconciler.core.models import (
    Action,
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    LearningUser,
    ManagerChange,
    Problem,
    Reactivate,
    SnapshotEntry,
    Update,
)
from reconciler.core.plan_matching import (
    _account_of,
    _live_account_of_leaver,
    _match_by_mail,
    _own_by_external_id,
    _owner_of,
)
from reconciler.core.plan_state import (
    _changed,
    _fresh,
    _full_write,
    _has_external_id,
    _initial_manager,
    _is_deleted,
    _is_linked,
    _is_own_schedule,
    _learning_id,
    _quarantine_problem,
    _state_after,
    _subordinates,
    _unknown_status,
    _unknown_status_reason,
)


def _deactivate_unlinked(wanted: Desired, data: PlanInput) -> Deactivate | None:
    """Shadow mode and its cut-over: deactivate the account a leaver still holds (the
    incumbent connector missed it), never the platform owner's; through every safety limit."""
    user = _live_account_of_leaver(wanted, data)
    if user is None:
        return None
    roles = data.candidate_roles.get(user.learning_user_id, frozenset())
    if any(role.role == "owner" for role in roles):
        return None
    return Deactivate(
        wanted.hibob_id,
        wanted.email,
        f"{wanted.reason}; the 360Learning account holding this email is still {user.status}",
        learning_user_id=user.learning_user_id,
        state=AppliedState(False, {"mail": wanted.email}),
    )


# -- one employee ------------------------------------------------------------------------------
def _plan_one(
    wanted: Desired, entry: SnapshotEntry | None, data: PlanInput, limits: Limits, live: set[str]
) -> Action | Problem | None:
    linked = _is_linked(entry, data)
    unknown = _unknown_status(entry, data) if linked else None
    if unknown is not None:
        return Problem(wanted.hibob_id, wanted.email, unknown)
    if wanted.verdict in ("inactive", "out_of_scope"):
        if wanted.verdict == "out_of_scope" and limits.out_of_scope == "ignore":
            return None
        if linked and entry is not None:
            return _deactivate(entry, data, wanted.reason)
        return _deactivate_unlinked(wanted, data) if data.is_migration else None
    if wanted.verdict != "active":
        return None
    state = _state_after(wanted, entry, live)
    if not linked:
        return _create_or_adopt(wanted, _fresh(state, live), data, limits)
    assert entry is not None and entry.learning_user_id is not None
    if entry.state is None:
        # Linked but never finished (a create whose pass died, or failed half-way).
        state = _fresh(state, live)
        return Adopt(
            wanted.hibob_id,
            wanted.email,
            f"finishing an interrupted create: {wanted.reason}",
            learning_user_id=entry.learning_user_id,
            state=state,
            **_full_write(state, limits),
            # It may be a deleted user whose restore failed: re-POST the mail it was linked
            # with (the account's own, when the employee's changed since), which answers
            # mailAlreadyUsed when the account is not deleted after all.
            restore=True,
            restore_mail=entry.email,
        )
    if _is_deleted(entry, data):
        if _is_own_schedule(entry, wanted, data):
            if not entry.is_active:
                return None  # recorded already
            return Deactivate(
                wanted.hibob_id,
                wanted.email,
                "deleted by 360Learning on its scheduled deactivation date; the termination stands",
                learning_user_id=entry.learning_user_id,
                state=replace(entry.state, is_active=False),
                is_already_deleted=True,
            )
        return _reactivate(wanted, entry, state, data, limits, live)
    return _update(wanted, entry, state, data, limits, live)


def _create_or_adopt(
    wanted: Desired, state: AppliedState, data: PlanInput, limits: Limits
) -> Action | Problem:
    assert wanted.email is not None
    mine, others = _match_by_mail(wanted.hibob_id, wanted.email, data)
    if not (mine or others) and (own := _own_by_external_id(wanted.hibob_id, data)):
        mine = [own]  # a migration: the incumbent's account under the employee's former mail
    if others:
        holder = ", ".join(sorted(others))
        return Problem(
            wanted.hibob_id,
            wanted.email,
            f"email held by the 360Learning account of employee {holder} "
            "(creating would restore or clash with it)",
        )
    if len(mine) > 1:
        return Problem(
            wanted.hibob_id,
            wanted.email,
            f"ambiguous: {len(mine)} 360Learning users have this email",
        )
    if not mine:
        return Create(
            wanted.hibob_id,
            wanted.email,
            f"new: {wanted.reason}",
            state=state,
            **_full_write(state, limits),
        )
    user = mine[0]
    if not user.is_status_known:
        return Problem(wanted.hibob_id, wanted.email, _unknown_status_reason(user))
    roles = data.candidate_roles.get(user.learning_user_id, frozenset())
    if any(role.role == "owner" for role in roles):
        return Problem(
            wanted.hibob_id,
            wanted.email,
            "the 360Learning user with this email is the platform owner: never "
            "adopted, changed or deactivated",
        )
    kept = frozenset(roles)
    state = replace(state, kept_groups=kept)
    return Adopt(
        wanted.hibob_id,
        wanted.email,
        f"existing 360Learning user with this email ({user.status}): {wanted.reason}",
        learning_user_id=user.learning_user_id,
        state=state,
        changes=_changed(state.attributes, user.attributes),
        activate=limits.activate_users and user.status != "active",
        restore=user.is_deleted,
        add_groups=state.groups - kept,
        manager=_adopted_manager(state, user, data),
        link_external_id=limits.is_external_id_enabled,
    )


def _adopted_manager(
    state: AppliedState, user: LearningUser, data: PlanInput
) -> ManagerChange | None:
    """The manager link an adoption writes: with the account's managers read (a migration),
    none when it is there already, else replacing the one it holds."""
    initial = _initial_manager(state)
    links = data.actual_links.get(user.learning_user_id)
    if initial is None or links is None or user.is_deleted:  # a restore drops every link
        return initial
    wanted = _account_of(initial.new, data)
    if wanted is not None and links.managers == {wanted}:
        return None
    wrong = sorted(links.managers - {wanted})
    if not wrong:
        return initial
    return ManagerChange(_owner_of(wrong[0], data), initial.new, wrong[0])


def _update(
    wanted: Desired,
    entry: SnapshotEntry,
    state: AppliedState,
    data: PlanInput,
    limits: Limits,
    live: set[str],
) -> Action | None:
    before = entry.state
    assert before is not None
    actual = data.actual.get(entry.learning_user_id or "") if data.actual is not None else None
    seen = actual.attributes if actual else before.attributes
    if wanted.create_only:  # written at create or adoption, never updated (`on = "create"`)
        kept = {k: before.attributes.get(k) for k in wanted.create_only}
        state = replace(state, attributes={**state.attributes, **kept})
    changes = {
        k: v for k, v in _changed(state.attributes, seen).items() if k not in wanted.create_only
    }
    add = state.groups - before.groups
    remove = before.groups - state.groups - before.kept_groups
    manager = (
        ManagerChange(before.manager, state.manager) if state.manager != before.manager else None
    )
    activate = actual is not None and limits.activate_users and actual.status != "active"
    link = limits.is_external_id_enabled and not _has_external_id(entry, data)
    relink: tuple[str, ...] = ()
    links = data.actual_links.get(entry.learning_user_id or "")
    if links is not None:  # a restore may have dropped links: compare them too
        add |= state.groups - links.roles
        if (
            manager is None
            and state.manager
            and _learning_id(state.manager, data) not in links.managers
            and state.manager in live
        ):
            manager = ManagerChange(None, state.manager)
        relink = tuple(
            s
            for s in _subordinates(entry.hibob_id, data, live)
            if _learning_id(s, data) not in links.subordinates
        )
    if not (changes or activate or add or remove or manager or link or relink):
        return None
    # Drift only when the stored state already matches Hibob: then 360Learning moved.
    is_drift = actual is not None and not _changed(state.attributes, before.attributes)
    reason = "differs from 360Learning (drift)" if is_drift else "changed in Hibob"
    if not (changes or activate or add or remove or manager or relink):
        reason = "the external-id link to the Hibob id is missing"
    return Update(
        wanted.hibob_id,
        wanted.email,
        reason,
        learning_user_id=entry.learning_user_id,
        state=replace(state, kept_groups=before.kept_groups),
        changes=changes,
        activate=activate,
        add_groups=frozenset(add),
        remove_groups=frozenset(remove),
        manager=manager,
        link_external_id=link,
        relink_subordinates=relink,
    )


def _reactivate(
    wanted: Desired,
    entry: SnapshotEntry,
    state: AppliedState,
    data: PlanInput,
    limits: Limits,
    live: set[str],
) -> Reactivate:
    before = entry.state
    assert before is not None
    state = _fresh(state, live)
    # Restore the employee's own account by the mail it holds; a new mail is PATCHed after.
    restore_mail = before.attributes.get("mail") or entry.email
    write = _full_write(state, limits)
    write["link_external_id"] = write["link_external_id"] and not _has_external_id(entry, data)
    return Reactivate(
        wanted.hibob_id,
        wanted.email,
        f"active again: {wanted.reason}",
        learning_user_id=entry.learning_user_id,
        state=replace(state, kept_groups=frozenset()),
        **write,
        relink_subordinates=_subordinates(entry.hibob_id, data, live),
        restore_mail=restore_mail,
    )


def _plan_absent(entry: SnapshotEntry | None, data: PlanInput) -> Action | Problem | None:
    if entry is None or not _is_linked(entry, data):
        return None
    if entry.is_quarantined(data.now) and not data.retry_quarantined:
        return _quarantine_problem(entry)
    result = data.absence.get(entry.hibob_id)
    if result == "unknown":
        return Problem(
            entry.hibob_id,
            entry.email,
            "missing from Hibob's search, and a read by id was refused (no "
            "permission?): unknown, not deactivated",
        )
    reason = (
        "deleted or hidden in Hibob: missing from the search and a read by id finds nobody"
        if result == "confirmed"
        else "missing from Hibob's search (not yet confirmed by a read by id)"
    )
    return _deactivate(entry, data, reason)


def _deactivate(entry: SnapshotEntry, data: PlanInput, reason: str) -> Deactivate | None:
    state = replace(entry.state, is_active=False) if entry.state else AppliedState(False)
    if not _is_deleted(entry, data):
        return Deactivate(
            entry.hibob_id,
            entry.email,
            reason,
            learning_user_id=entry.learning_user_id,
            state=state,
        )
    if entry.is_active:  # deleted in 360Learning already (its schedule, or by hand): record it
        return Deactivate(
            entry.hibob_id,
            entry.email,
            f"already deleted in 360Learning; {reason}",
            learning_user_id=entry.learning_user_id,
            state=state,
            is_already_deleted=True,
        )
    return None
