"""Recovery after a crash: which account a create that was never answered made (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from reconciler.core.models import AppliedState, LearningUser


def compute_unconfirmed_create_link(
    mail: str, users: Iterable[LearningUser], linked_user_ids: Collection[str]
) -> str | None:
    """The account a create of `mail` that a killed process never saw answered made, if any.

    Before every create the pass looked `mail` up and found no account, so the one live
    account now holding exactly that mail, linked to nobody, is that create's. Anything else
    (none, several, deleted, or another employee's) links nothing, and the plan decides as
    for anyone unlinked.
    """
    mine = [
        u
        for u in users
        if u.mail == mail.strip().lower()
        and not u.is_deleted
        and u.learning_user_id not in linked_user_ids
    ]
    return mine[0].learning_user_id if len(mine) == 1 else None


def compute_confirmed_state(state: AppliedState, user: LearningUser | None) -> AppliedState | None:
    """The applied state of an employee whose last write a killed process never saw answered,
    as 360Learning holds it: whether the account is deleted, and the managed attributes' values.

    The write may have gone through (a deactivation, then a rehire before the restart) or not;
    the plan then compares the employee's desired state with this. An account that is gone
    keeps the stored state: the plan treats it as any missing account.

    None: the account is unfinished, and the plan finishes it with a full write (attributes,
    activation, groups, links), as for a create that died half-way. That is an account that
    is invited (a create's or a restore's POST went through, its activation was never sent),
    or back although the store had it deleted (a restore, which drops groups, roles and the
    account's subordinates' manager links: `is_restore_suspected` tells the caller).
    """
    if user is None:
        return state
    if is_restore_suspected(state, user) or user.status == "invited":
        return None
    attributes = {name: user.attributes.get(name) for name in state.attributes}
    return replace(state, is_active=not user.is_deleted, attributes=attributes)


def is_restore_suspected(state: AppliedState, user: LearningUser | None) -> bool:
    """The store had the account deleted and 360Learning has it back: an unanswered restore
    went through, and 360Learning dropped "being the manager of others" with it."""
    return user is not None and not state.is_active and not user.is_deleted
