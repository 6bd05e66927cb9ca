"""Recovery at the start of a real pass: what a process killed mid-pass left unconfirmed."""

from __future__ import annotations

import logging
from datetime import datetime

from reconciler.clients.learning import LearningClient
from reconciler.core.recovery import (
    compute_confirmed_state,
    compute_unconfirmed_create_link,
    is_restore_suspected,
)
from reconciler.store.database import Store

log = logging.getLogger("reconciler.passes.recovery")


def link_unconfirmed_creates(store: Store, learning: LearningClient, now: datetime) -> int:
    """Link the accounts that creates sent by a killed process made (the POST went through,
    the process died before saving the link), so this pass finishes them or, for someone
    who left or changed email meanwhile, deactivates or re-mails them instead of leaving an
    orphan. Reads 360Learning only when such a create exists. Returns how many it linked."""
    unconfirmed = store.list_unconfirmed_creates()
    if not unconfirmed:
        return 0
    linked = {e.learning_user_id for e in store.load_snapshot().values() if e.learning_user_id}
    found = 0
    for hibob_id, mail in unconfirmed:
        entry = store.get_entry(hibob_id)
        if entry is not None and entry.learning_user_id:
            continue  # two unconfirmed creates for one employee: the first linked it
        users = learning.find_users_by_mail(mail.strip().lower())
        if user_id := compute_unconfirmed_create_link(mail, users, linked):
            store.save_link(hibob_id, user_id, mail, now)
            linked.add(user_id)
            found += 1
            log.warning(
                "employee %s: the create of %s sent before a crash made account %s;"
                " linked, and this pass finishes it",
                hibob_id,
                mail,
                user_id,
                extra={"employee": hibob_id},
            )
    return found


def confirm_unconfirmed_writes(store: Store, learning: LearningClient) -> int:
    """Read back the accounts of linked employees whose last write a killed process sent but
    never saw answered, and store what 360Learning holds, so this pass's plan starts from the
    truth: a deactivation that went through before a rehire is undone, an update that went
    through before HR reverted it is reverted, and an account a restore or create brought
    back but never finished is finished (with its team relinked). Returns how many states it
    corrected."""
    corrected = 0
    for hibob_id in store.list_unconfirmed_writes():
        entry = store.get_entry(hibob_id)
        if entry is None or entry.state is None or entry.learning_user_id is None:
            continue
        user = learning.get_user(entry.learning_user_id)
        if is_restore_suspected(entry.state, user):
            _drop_team_links(store, hibob_id)
        confirmed = compute_confirmed_state(entry.state, user)
        if confirmed != entry.state:
            store.save_state(hibob_id, confirmed)
            corrected += 1
    return corrected


def _drop_team_links(store: Store, manager_id: str) -> None:
    """A restore dropped the manager links to this account: record it on the subordinates, so
    that the plan links them again."""
    store.drop_manager(manager_id)
