"""Pure: who holds which 360Learning account, for the plan's decisions.

Email ambiguity between employees, the users an employee may adopt (by mail, or by the
external-id mapping in a migration), leavers' unlinked accounts, and the account or owner of an
employee. Called by `core.plan` and `core.plan_employee`; no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from reconciler.core.desired import Desired
from reconciler.core.inputs import PlanInput
from reconciler.core.models import LearningUser
from reconciler.core.plan_state import _is_linked


# -- who may be written at all ---------------------------------------------------------------
def compute_ambiguity(data: PlanInput) -> dict[str, Desired]:
    """Two employees with one email are both skipped: neither is written, both are reported.

    Employees not read this pass (a targeted read) count with the email last read for them.
    """
    owners: defaultdict[str, set[str]] = defaultdict(set)
    # Only the emails of the employees read can make one of them ambiguous (an unchanged
    # pass reads a few, beside a snapshot of everyone).
    read = {d.email for d in data.desired.values() if d.email}
    for hibob_id, email in data.known_emails.items():
        if email in read and hibob_id not in data.desired:
            owners[email].add(hibob_id)
    for hibob_id, entry in data.snapshot.items():
        if entry.email in read and hibob_id not in data.desired and entry.is_linked:
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
