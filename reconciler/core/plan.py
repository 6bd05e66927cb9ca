"""Pure: every decision of a pass, as one function of (Hibob data, snapshot, 360Learning data).

`compute_plan` turns what a pass read into a Plan of typed actions, each with a human reason:
scope verdicts, email ambiguity, adoption candidates, quarantine, absence, safety limits.
Scheduled, targeted and `explain` passes call it with what they read and nothing else, so the
same data always gives the same decision. No I/O, no clock reads (`now` is an input).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from reconciler.core.desired import Desired
from reconciler.core.drift import category_of
from reconciler.core.inputs import Absence as Absence  # re-exported: the plan's inputs
from reconciler.core.inputs import ActualLinks as ActualLinks
from reconciler.core.inputs import Limits as Limits
from reconciler.core.inputs import PlanInput as PlanInput
from reconciler.core.models import (
    Action,
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    GroupRole,
    LearningUser,
    ManagerChange,
    Plan,
    Problem,
    Reactivate,
    SnapshotEntry,
    Update,
    Upsert,
)
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


# -- who may be written at all ---------------------------------------------------------------
def compute_ambiguity(data: PlanInput) -> dict[str, Desired]:
    """Two employees with one email are both skipped: neither is written, both are reported.

    Employees not read this pass (a targeted read) count with the email last read for them.
    """
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for hibob_id, email in data.known_emails.items():
        if hibob_id not in data.desired and email:
            owners[email].add(hibob_id)
    for hibob_id, entry in data.snapshot.items():
        if hibob_id not in data.desired and entry.is_linked and entry.email:
            owners[entry.email].add(hibob_id)
    for hibob_id, wanted in data.desired.items():
        if wanted.email:
            owners[wanted.email].add(hibob_id)
    marked = dict(data.desired)
    for hibob_id, wanted in data.desired.items():
        others = sorted(owners.get(wanted.email or "", set()) - {hibob_id})
        if others and wanted.verdict in ("active", "inactive"):
            marked[hibob_id] = replace(
                wanted,
                verdict="skip",
                reason=f"ambiguous: email shared with employee {', '.join(others)}",
            )
    return marked


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


def _unlinked_leavers(data: PlanInput) -> dict[str, Desired]:
    """Leavers and out-of-scope people with no link (only with `is_migration`)."""
    if not data.is_migration or data.actual is None:
        return {}
    return {
        h: d
        for h, d in data.desired.items()
        if d.verdict in ("inactive", "out_of_scope")
        and d.email
        and not _is_linked(data.snapshot.get(h), data)
    }


def _live_account_of_leaver(wanted: Desired, data: PlanInput) -> LearningUser | None:
    """The one live, unlinked account holding a leaver's email (read in full), if any."""
    if data.actual is None or not wanted.email:
        return None
    mine, others = _match_by_mail(wanted.hibob_id, wanted.email, data)
    if others or len(mine) != 1 or not mine[0].is_status_known or mine[0].is_deleted:
        return None
    return mine[0]


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


def _unlinked_to_provision(data: PlanInput) -> dict[str, Desired]:
    """Active employees with an email and no link, once ambiguous ones are set aside.

    Most passes have none: the ambiguity check, which reads everyone, runs only when needed.
    """
    pending = {
        h: d
        for h, d in data.desired.items()
        if d.verdict == "active" and d.email and not _is_linked(data.snapshot.get(h), data)
    }
    if not pending:
        return {}
    marked = compute_ambiguity(data)
    return {h: marked[h] for h in pending if marked[h].verdict == "active"}


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


def _own_by_external_id(hibob_id: str, data: PlanInput) -> LearningUser | None:
    """Migration: the live account the external-id mapping names for this employee, when no
    one else is linked to it (whatever mail it holds)."""
    if not data.is_migration or data.external_ids is None or data.actual is None:
        return None
    user = data.actual.get(data.external_ids.get(hibob_id, ""))
    if user is None or user.is_deleted or not user.is_status_known:
        return None
    taken = any(
        e.learning_user_id == user.learning_user_id and h != hibob_id
        for h, e in data.snapshot.items()
    )
    return None if taken else user


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


def _account_of(hibob_id: str | None, data: PlanInput) -> str | None:
    """The 360Learning account of an employee: linked, or the one it would adopt."""
    if hibob_id is None:
        return None
    if (entry := data.snapshot.get(hibob_id)) is not None and entry.learning_user_id:
        return entry.learning_user_id
    wanted = data.desired.get(hibob_id)
    if wanted is None or not wanted.email:
        return None
    mine, _ = _match_by_mail(hibob_id, wanted.email, data)
    if not mine and (own := _own_by_external_id(hibob_id, data)) is not None:
        return own.learning_user_id
    return mine[0].learning_user_id if len(mine) == 1 else None


def _owner_of(learning_user_id: str, data: PlanInput) -> str | None:
    """The employee an account belongs to (linked, or holding its mail), if any."""
    for hibob_id, entry in data.snapshot.items():
        if entry.learning_user_id == learning_user_id:
            return hibob_id
    user = data.actual.get(learning_user_id) if data.actual is not None else None
    mail = user.mail if user else None
    return next((h for h, d in data.desired.items() if mail and d.email == mail), None)


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


# -- helpers -----------------------------------------------------------------------------------
def _match_by_mail(
    hibob_id: str, email: str, data: PlanInput
) -> tuple[list[LearningUser], list[str]]:
    """(users this employee may adopt, other employees whose account holds the email).

    Compared locally and case-insensitively: 360Learning's filter semantics are undocumented.
    """
    link_owner = {
        e.learning_user_id: h
        for h, e in data.snapshot.items()
        if e.learning_user_id and h != hibob_id
    }
    if data.external_ids is not None:
        link_owner.update({uid: h for h, uid in data.external_ids.items() if h != hibob_id})
    users = data.users_by_mail.get(email, ())
    if data.actual is not None:
        users = [u for u in data.actual.values() if u.mail == email]
    mine, others = [], []
    for user in users:
        if user.mail != email:
            continue
        owner = link_owner.get(user.learning_user_id)
        if owner is not None and owner != hibob_id:
            others.append(owner)
        else:
            mine.append(user)
    return mine, others


def _is_linked(entry: SnapshotEntry | None, data: PlanInput) -> bool:
    if entry is None or entry.learning_user_id is None:
        return False
    # A full pass that no longer sees the linked user: match again by email.
    return data.actual is None or entry.learning_user_id in data.actual


def _unknown_status(entry: SnapshotEntry | None, data: PlanInput) -> str | None:
    """Why nothing may be written for a linked account whose status this read did not tell."""
    if entry is None or data.actual is None:
        return None
    user = data.actual.get(entry.learning_user_id or "")
    return None if user is None or user.is_status_known else _unknown_status_reason(user)


def _unknown_status_reason(user: LearningUser) -> str:
    shown = repr(user.status) if user.status else "no status"
    return (
        f"360Learning user {user.learning_user_id} has {shown}, not active, invited or deleted: "
        "nothing is written for it until its state is known"
    )


def _is_deleted(entry: SnapshotEntry, data: PlanInput) -> bool:
    if data.actual is not None:
        user = data.actual.get(entry.learning_user_id or "")
        return user is None or user.is_deleted
    if entry.state is None:
        return False
    return not entry.is_active or _scheduled_date_passed(entry.state, data.now)


def _is_own_schedule(entry: SnapshotEntry, wanted: Desired, data: PlanInput) -> bool:
    """Deleted by its own toBeDeactivatedAt while Hibob still schedules the termination."""
    assert entry.state is not None
    return _scheduled_date_passed(entry.state, data.now) and wanted.is_leaving


def _scheduled_date_passed(state: AppliedState, now: datetime) -> bool:
    scheduled = _parse_instant(state.attributes.get("toBeDeactivatedAt"))
    return scheduled is not None and scheduled <= now


def _has_external_id(entry: SnapshotEntry, data: PlanInput) -> bool:
    if data.external_ids is not None:
        return data.external_ids.get(entry.hibob_id) == entry.learning_user_id
    return entry.state is not None and entry.state.is_external_id_linked


def _learning_id(hibob_id: str, data: PlanInput) -> str | None:
    entry = data.snapshot.get(hibob_id)
    return entry.learning_user_id if entry else None


def _subordinates(hibob_id: str, data: PlanInput, live: set[str]) -> tuple[str, ...]:
    return tuple(
        sorted(
            h
            for h, e in data.snapshot.items()
            if e.state is not None and e.state.manager == hibob_id and h in live and e.is_linked
        )
    )


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


def _state_after(wanted: Desired, entry: SnapshotEntry | None, live: set[str]) -> AppliedState:
    """The snapshot state after applying `wanted`: unknown parts keep what was applied."""
    before = entry.state if entry and entry.state else None
    attributes = {**(before.attributes if before else {}), **wanted.attributes}
    groups = (
        wanted.groups if wanted.groups is not None else (before.groups if before else frozenset())
    )
    manager = before.manager if before else None
    if wanted.is_manager_known:
        target = wanted.manager_hibob_id
        if target == wanted.hibob_id:
            target = None
        # Link only a manager whose account is active after this pass (360Learning refuses a
        # deleted manager); a link made before the manager left stays, so nothing cascades.
        if target is not None and target not in live and target != manager:
            target = None
        manager = target
    return AppliedState(
        is_active=True,
        attributes=attributes,
        groups=frozenset(groups),
        manager=manager,
        kept_groups=before.kept_groups if before else frozenset(),
        is_external_id_linked=before.is_external_id_linked if before else False,
    )


def _full_write(state: AppliedState, limits: Limits) -> dict[str, Any]:
    """What an account that holds nothing of ours yet needs (created, finished or restored):
    every attribute, activation, every group, its manager link and the external-id mapping."""
    return {
        "changes": _present(state.attributes),
        "activate": limits.activate_users,
        "add_groups": state.groups,
        "manager": _initial_manager(state),
        "link_external_id": limits.is_external_id_enabled,
    }


def _initial_manager(state: AppliedState) -> ManagerChange | None:
    return ManagerChange(None, state.manager) if state.manager else None


def _fresh(state: AppliedState, live: set[str]) -> AppliedState:
    """The state of an account that holds no links yet (new, adopted or restored): a link to a
    manager who is not active would be refused, so it waits for the manager's return."""
    return state if state.manager in live or state.manager is None else replace(state, manager=None)


def _quarantine_problem(entry: SnapshotEntry) -> Problem:
    until = entry.quarantined_until.isoformat() if entry.quarantined_until else "?"
    return Problem(entry.hibob_id, entry.email, f"quarantined until {until}: {entry.last_error}")


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _changed(wanted: Mapping[str, Any], seen: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if _norm(k, v) != _norm(k, seen.get(k))}


def _norm(key: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if key == "mail":
        return str(value).lower()
    if key == "toBeDeactivatedAt":
        instant = _parse_instant(value)  # 360Learning may add or drop milliseconds
        return instant.replace(second=0, microsecond=0) if instant else value
    return value


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
