"""Reconcile, the 360Learning side: what a pass reads of 360Learning, and its snapshot rows.

Everyone (full passes, with the links of restored accounts), the linked account (targeted
passes) or the unlinked emails (incremental passes); the roles of adoption candidates; the
snapshot rows a pass decides from (everyone's, read while Hibob's search is in flight; a
targeted pass's: its employee's, her managers', the holders of the accounts it might adopt).
Part of `reconcile`; it reads only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from reconciler.core.custom_fields import ResolvedCustomFields
from reconciler.core.desired import Desired
from reconciler.core.models import Employee, GroupRole, LearningUser, Problem, SnapshotEntry
from reconciler.core.plan import (
    ActualLinks,
    PlanInput,
    compute_adoption_candidates,
    compute_mail_lookups,
)
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ApiAuthFailed
from reconciler.passes.apply import ProgressCallback
from reconciler.passes.context import PassContext
from reconciler.passes.custom_fields import READ_WORKERS, read_held_values
from reconciler.passes.reconcile_settings import NO_CUSTOM_FIELDS
from reconciler.passes.shadow import read_adopted_values

log = logging.getLogger("reconciler.passes.reconcile")  # the pass's records keep one logger name
ROLES_READ_ONE_BY_ONE = 20
"""Up to this many adoption candidates, one roles read each; above, group memberships."""
LIST_EVERYONE_ABOVE = 1000
"""More unlinked emails to look up than this: list every 360Learning user instead."""


def _read_learning(
    services: PassContext,
    kind: PassKind,
    data: PlanInput,
    as_given: dict[str, str],
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
    progress: ProgressCallback | None = None,
) -> PlanInput:
    """What 360Learning holds for this pass: everything (full) or the unlinked emails.

    Emails are looked up as Hibob gives them and lower-cased, then compared locally: whether
    360Learning's `mail` filter ignores case is undocumented.
    """
    learning, platform = services.learning, services.settings.learning.external_id_platform
    if kind == PassKind.FULL:
        actual = {u.learning_user_id: u for u in learning.list_users_with_deleted()}
        external = (
            {h: uid for h, uid in learning.list_external_ids(platform).items()}
            if platform
            else None
        )
        data = replace(data, actual=actual, external_ids=external)
        data = replace(data, actual_links=_read_restored_links(services, data))
    elif kind == PassKind.TARGETED and (linked := _linked_users(data)):
        # The targeted employee's own account, read: drift that `explain` shows is repaired.
        actual = {
            user.learning_user_id: user
            for user_id in linked
            if (user := learning.get_user(user_id)) is not None
        }
        data = replace(data, actual=actual)
    else:
        mails = compute_mail_lookups(data)
        by_mail: defaultdict[str, list[LearningUser]] = defaultdict(list)
        forms = sorted({*mails, *(as_given.get(m, m) for m in mails)})
        if forms:
            # Many lookups (a first sync, a migration): one listing of everyone costs fewer
            # calls than 50 mails per filtered call; users are matched locally either way.
            every = len(forms) > LIST_EVERYONE_ABOVE
            wanted = set(mails)
            for user in learning.list_users_with_deleted(mails=None if every else forms):
                if user.mail and (not every or user.mail in wanted):
                    by_mail[user.mail].append(user)
        data = replace(data, users_by_mail=dict(by_mail))
    if kind == PassKind.TARGETED:  # who holds the accounts this employee might adopt
        data = replace(data, snapshot=_with_account_holders(services, data))
    data = read_held_values(learning, data, custom, progress or _no_progress)  # drift
    candidates = compute_adoption_candidates(data)
    roles = _candidate_roles(services, data, candidates)
    if data.is_migration:  # whether the incumbent linked each adopted account's manager
        managed = {
            c.learning_user_id
            for h, c in candidates.items()
            if data.desired[h].verdict == "active" and data.desired[h].manager_hibob_id
        }
        links = {
            uid: ActualLinks(roles=roles[uid], managers=frozenset(learning.list_managers(uid)))
            for uid in sorted(managed - set(data.actual_links))
        }
        data = replace(data, actual_links={**data.actual_links, **links})
        data = read_adopted_values(learning, data, custom, candidates)
    return replace(data, candidate_roles=roles)


def _candidate_roles(
    services: PassContext, data: PlanInput, candidates: Mapping[str, LearningUser]
) -> dict[str, frozenset[GroupRole]]:
    """The roles of each adoption candidate: whether it is the owner (never adopted) and what
    an adopted admin keeps. A few candidates are read one by one; many (the migration case)
    from the memberships of the platform group, where the owner and the admins are, and of
    the groups the rules would put them in, so only the platform group's admins (anyone with
    a role there other than learner) still cost a roles read each (product §4)."""
    learning = services.learning
    users = sorted({c.learning_user_id for c in candidates.values()})
    if len(users) <= ROLES_READ_ONE_BY_ONE:
        return {u: frozenset(learning.list_user_roles(u)) for u in users}
    try:
        platform = learning.find_platform_group_id()
        groups = {platform} | {
            g.group_id for h in candidates for g in (data.desired[h].groups or ())
        }
        found: dict[str, set[GroupRole]] = {u: set() for u in users}
        ordered = sorted(groups)
        # The groups are read side by side (paced as any read): each group's pages wait on
        # the platform, and one's answer is parsed while the other's is on its way.
        workers = min(len(ordered), READ_WORKERS)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roles") as pool:
            memberships = list(pool.map(learning.list_group_roles, ordered))
        for group_id, members in zip(ordered, memberships, strict=True):
            for user_id, role in members:
                if user_id in found:
                    found[user_id].add(GroupRole(group_id, role))
    except ApiAuthFailed as exc:
        if exc.status != 403:
            raise
        log.warning("no groups:read scope: one roles read per adoption candidate")
        return {u: frozenset(learning.list_user_roles(u)) for u in users}
    for user_id, roles in found.items():
        here = {r.role for r in roles if r.group_id == platform}
        if here - {"learner"} and "owner" not in here:  # an admin keeps every role: read all
            found[user_id] = set(learning.list_user_roles(user_id))
    return {u: frozenset(r) for u, r in found.items()}


def _stored_rows(
    services: PassContext, kind: PassKind
) -> tuple[dict[str, SnapshotEntry], dict[str, str] | None]:
    """The snapshot, and for an incremental pass the source keys stored beside it."""
    store = services.store
    snapshot = store.load_snapshot()  # first, as before: a key forgotten meanwhile is not read
    return snapshot, store.load_source_keys() if kind == PassKind.INCREMENTAL else None


def _targeted_rows(
    services: PassContext, employees: list[Employee], problems: list[Problem]
) -> dict[str, SnapshotEntry]:
    """The snapshot rows a targeted pass decides from: its employee's, whoever else holds
    that email, the employees it manages, and its applied manager's."""
    ids = {e.hibob_id for e in employees} | {p.hibob_id for p in problems if p.hibob_id}
    rows = services.store.load_entries(
        ids, emails={e.email for e in employees if e.email}, managed_by=ids
    )
    managers = {
        e.state.manager for h, e in rows.items() if h in ids and e.state and e.state.manager
    }
    return {**services.store.load_entries(managers - set(rows)), **rows}


def _with_managers(
    services: PassContext,
    snapshot: dict[str, SnapshotEntry],
    desired: Mapping[str, Desired],
) -> dict[str, SnapshotEntry]:
    """Add the rows of the managers Hibob names for the targeted employee."""
    wanted = {d.manager_hibob_id for d in desired.values() if d.manager_hibob_id} - set(snapshot)
    return {**snapshot, **services.store.load_entries(wanted)} if wanted else snapshot


def _with_account_holders(services: PassContext, data: PlanInput) -> dict[str, SnapshotEntry]:
    """Add the rows of the employees linked to the 360Learning users a targeted pass read."""
    ids = {u.learning_user_id for users in data.users_by_mail.values() for u in users}
    ids |= set(data.actual or {})
    known = {e.learning_user_id for e in data.snapshot.values()}
    extra = services.store.load_entries(learning_user_ids=ids - known) if ids - known else {}
    return {**extra, **data.snapshot}


def _linked_users(data: PlanInput) -> list[str]:
    """The 360Learning accounts of the employees a targeted pass read, when all are linked."""
    entries = [data.snapshot.get(h) for h in data.desired]
    if not entries or any(e is None or not e.learning_user_id or e.state is None for e in entries):
        return []
    return [e.learning_user_id for e in entries if e is not None and e.learning_user_id]


def _read_restored_links(services: PassContext, data: PlanInput) -> dict[str, ActualLinks]:
    """Roles, managers and subordinates of linked users that were ever restored.

    A restore drops groups, roles and "being the manager of others" (360Learning help), by
    hand or by us, so only those users are likely to have lost links; reading every user's
    links would cost three reads per user each night.
    """
    assert data.actual is not None
    learning, links = services.learning, {}
    for entry in data.snapshot.values():
        user = data.actual.get(entry.learning_user_id or "")
        if user is None or user.is_deleted or not user.was_ever_restored or not entry.is_active:
            continue
        uid = user.learning_user_id
        links[uid] = ActualLinks(
            roles=frozenset(learning.list_user_roles(uid)),
            managers=frozenset(learning.list_managers(uid)),
            subordinates=frozenset(learning.list_subordinates(uid)),
        )
    return links


def _no_progress(phase: str, done: int, total: int | None) -> None:
    pass
