"""Recovery after a crash: which account a create that was never answered made (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from reconciler.core.models import LearningUser


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
