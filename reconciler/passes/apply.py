"""Apply: execute a Plan through LearningClient; journal before sending, record outcomes after.

Called by reconcile with the same Plan a dry run prints. One failing employee never stops the
pass: its error is journalled and, when it is about that person's data, counted toward
quarantine. A credential or scope error (401/403) stops the pass and quarantines nobody. The
snapshot advances only for what was applied. Manager links go last, once every user of the pass
has its account.

This module holds `apply_plan` and `_Runner`, put together from the parts of a runner: its base
(`apply_runner`: settings, hooks, report, the runner's state and bookkeeping), the account steps
(`apply_accounts`), the manager links (`apply_links`) and what waits for the actions
(`apply_deferred`). The names other modules use are importable from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from reconciler.clients.learning import LearningClient
from reconciler.clients.pacer import enter_lane, is_priority_lane
from reconciler.core.models import (
    Action,
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    Plan,
    Reactivate,
    Upsert,
)
from reconciler.core.moves import compute_interlocked_mail_changes
from reconciler.errors import ApiRejected
from reconciler.passes.apply_accounts import REFUSED_PLATFORM_KEY as REFUSED_PLATFORM_KEY
from reconciler.passes.apply_accounts import RunnerAccounts
from reconciler.passes.apply_deferred import RunnerDeferred, _stored_mails, _without_mail
from reconciler.passes.apply_links import RunnerLinks, _has_links, _link_writes
from reconciler.passes.apply_runner import ApplyReport as ApplyReport
from reconciler.passes.apply_runner import ApplySettings as ApplySettings
from reconciler.passes.apply_runner import PassHooks as PassHooks
from reconciler.passes.apply_runner import ProgressCallback as ProgressCallback
from reconciler.store.database import Store

SYSTEMIC_MIN = 5


def compute_systemic_error(rejected: list[tuple[str, ApiRejected]], attempted: int) -> str | None:
    """Pure: one error code for most employees of a pass is about the platform, not them."""
    if len(rejected) < SYSTEMIC_MIN:
        return None
    code, count = Counter(exc.code for _, exc in rejected).most_common(1)[0]
    if count * 2 <= attempted:
        return None
    example = next(exc for _, exc in rejected if exc.code == code)
    return (
        f"{count} of {attempted} employees failed the same way, so nobody is quarantined: {example}"
    )


def apply_plan(
    plan: Plan,
    *,
    client: LearningClient,
    store: Store,
    settings: ApplySettings,
    pass_id: int | None,
    now: datetime,
    hooks: PassHooks | None = None,
) -> ApplyReport:
    report = ApplyReport()
    run = _Runner(client, store, settings, pass_id, now, report, hooks or PassHooks())
    # Mails that updates take from each other (swaps, rotations) wait for one ordered run.
    moving = compute_interlocked_mail_changes(plan.actions, _stored_mails(store, plan.actions))
    actions = tuple(_without_mail(a) if a.hibob_id in moving else a for a in plan.actions)
    linking = [a for a in actions if _has_links(a)]
    run.total = sum(map(run.weight, plan.actions)) + sum(map(_link_writes, linking))
    run.tick(0)
    # The workers send in the caller's pacer lane (a targeted pass's writes go first).
    pool = ThreadPoolExecutor(
        max_workers=settings.max_workers, initializer=enter_lane, initargs=(is_priority_lane(),)
    )
    try:
        run.is_bulk = compute_is_bulk(plan)
        quiet = run.record_quiet_adoptions(actions)
        rest = [a for a in actions if a.hibob_id not in quiet]
        done = [a for a in actions if a.hibob_id in quiet]
        done += [a for a, ok in zip(rest, pool.map(run.apply_action, rest), strict=True) if ok]
        run.move_mails(moving, {a.hibob_id: a for a in plan.actions})
        run.add_deferred_memberships()
        links = [a for a in done if _has_links(a)]
        run.tick(sum(map(_link_writes, linking)) - sum(map(_link_writes, links)))
        list(pool.map(run.apply_links, links))
    finally:
        # On Ctrl-C: what has not started never starts; what has finishes and is journalled.
        pool.shutdown(wait=True, cancel_futures=True)
    report.systemic_error = compute_systemic_error(report.rejected, len(plan.actions))
    if report.pass_error is None:
        run.record_failures()
    return report


class _Runner(RunnerAccounts, RunnerLinks, RunnerDeferred):
    """One apply: `RunnerBase`'s state and bookkeeping, and the steps of its parts."""

    def weight(self, action: Action) -> int:
        """About how many writes `apply_action` sends: progress counts writes, so the ETA
        holds while slow creates give way to one-write manager links."""
        if isinstance(action, Deactivate):
            return 0 if action.is_already_deleted else 1
        if not isinstance(action, Upsert):
            return 1
        if not [f for f in action.fields if f not in ("manager", "subordinates")]:
            return 0
        writes = int(isinstance(action, Create | Reactivate) or bool(action.changes))
        writes += int(action.activate) + len(action.add_groups) + len(action.remove_groups)
        if isinstance(action, Create | Reactivate) and any(
            g.group_id == self.settings.group_id and g.role == self.settings.role
            for g in action.add_groups
        ):
            writes -= 1  # the membership comes with the create
        return max(
            1, writes + int(action.link_external_id and bool(self.settings.external_id_platform))
        )

    def record_quiet_adoptions(self, actions: Sequence[Action]) -> set[str]:
        """Adoptions that send nothing (the migration case), recorded at once: one
        transaction for their links and journal rows instead of one each, and no worker
        task. With no write in flight, no pending row is needed for a crash. A service pass
        claims each employee (hooks.claim): its adoptions take the one-by-one path."""
        if self.hooks.claim is not None and self.pass_id is not None:
            return set()
        quiet = [a for a in actions if isinstance(a, Adopt) and _is_quiet_adoption(a)]
        if not quiet:
            return set()
        self.store.record_adoptions(
            self.pass_id,
            [
                (a.hibob_id, a.email, a.reason, a.learning_user_id or "", _kept_manager(a))
                for a in quiet
            ],
            self.at(),
        )
        for action in quiet:
            self._report_ok(action, action.kind, [])
        self.tick(sum(map(self.weight, quiet)))
        return {a.hibob_id for a in quiet}

    def apply_action(self, action: Action) -> bool:
        return self._claimed(
            action, action.kind, self.weight(action), lambda: self._apply_action(action)
        )

    def _apply_action(self, action: Action) -> bool:
        if self.report.auth_error is not None:
            return False  # the credentials are wrong: stop writing
        fields = [f for f in action.fields if f not in ("manager", "subordinates")]
        if not fields and not isinstance(action, Adopt):
            return True  # only links change: apply_links journals them
        # An adoption is a decision to record even when nothing differs: the link is stored
        # (and journalled), so later passes neither look the mail up again nor leave its
        # subordinates waiting for a linked manager.
        assert action.state is not None
        # Until its manager link is applied, the snapshot keeps the previous manager.
        state = action.state
        if isinstance(action, Upsert) and action.manager is not None:
            state = replace(state, manager=action.manager.old)
        if isinstance(action, Adopt) and _is_quiet_adoption(action):
            # Nothing to send (the migration case): the link and its journal row go in one
            # transaction; with no write in flight, no pending row is needed for a crash.
            assert action.learning_user_id
            self.store.record_adoption(
                self.pass_id,
                action.hibob_id,
                action.email,
                action.reason,
                learning_user_id=action.learning_user_id,
                state=state,
                at=self.at(),
            )
            self._report_ok(action, action.kind, fields)
            return True
        # The manager link is the links step's; a restore of this account drops it.
        keep_manager = not _restores(action)
        return self._journalled(
            action, action.kind, fields, lambda: self._step(action), state, keep_manager
        )


BULK_THRESHOLD = 50  # below it, one call each: a bulk job takes a second or more to run


def compute_is_bulk(plan: Plan) -> bool:
    """Pure: enough memberships beyond the create's own to be worth bulk jobs."""
    count = sum(len(a.add_groups) for a in plan.actions if isinstance(a, Upsert))
    return count >= BULK_THRESHOLD


def _is_quiet_adoption(action: Adopt) -> bool:
    """An adoption with nothing to send but its links (applied after the actions)."""
    return (
        not action.restore
        and bool(action.learning_user_id)
        and action.state is not None
        and not [f for f in action.fields if f not in ("manager", "subordinates")]
    )


def _restores(action: Action) -> bool:
    """Whether the action re-POSTs a deleted account, which drops its links."""
    return isinstance(action, Reactivate) or (isinstance(action, Adopt) and action.restore)


def _kept_manager(action: Upsert) -> AppliedState:
    """The state to store before the links: until its manager link is applied, the
    snapshot keeps the previous manager."""
    assert action.state is not None
    if action.manager is not None:
        return replace(action.state, manager=action.manager.old)
    return action.state
