"""Apply: execute a Plan through LearningClient; journal before sending, record outcomes after.

Called by reconcile with the same Plan a dry run prints. One failing employee never stops the
pass: its error is journalled and, when it is about that person's data, counted toward
quarantine. A credential or scope error (401/403) stops the pass and quarantines nobody. The
snapshot advances only for what was applied. Manager links go last, once every user of the pass
has its account.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from reconciler.clients.learning import LearningClient
from reconciler.clients.learning_groups import Membership, add_memberships
from reconciler.clients.pacer import enter_lane, is_priority_lane
from reconciler.core.custom_fields import split_custom
from reconciler.core.models import (
    Action,
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    GroupRole,
    LearningUser,
    Plan,
    Problem,
    Reactivate,
    Update,
    Upsert,
)
from reconciler.core.moves import compute_interlocked_mail_changes, compute_mail_moves
from reconciler.core.plan import Limits, compute_existing_user_decision
from reconciler.errors import (
    AccountConflict,
    ApiAuthFailed,
    ApiError,
    ApiRejected,
    ApiUnavailable,
)
from reconciler.passes.custom_fields import cached_definitions, write_custom_values
from reconciler.store.database import Store

log = logging.getLogger("reconciler.passes.apply")
QUARANTINE_AFTER = 3
QUARANTINE_MAX_SECONDS = 86400.0
SYSTEMIC_MIN = 5
REFUSED_PLATFORM_KEY = "refused_external_id_platform"
"""service_state key: the external-id platform name 360Learning last refused as reserved."""
# 360Learning answers these when asked to do what is already done.
ALREADY_DONE = ("userNotFoundInGroup", "managerNotAssignedToUser", "managerNotFound")


@dataclass(frozen=True)
class ApplySettings:
    group_id: str
    role: str
    send_invitation_email: bool
    external_id_platform: str
    quarantine_base_seconds: float = 900.0
    max_workers: int = 4
    limits: Limits = Limits()


ProgressCallback = Callable[[str, int, int | None], None]
"""(phase, done, total): "read", "plan" or "apply"; total is None while unknown."""


@dataclass(frozen=True)
class PassHooks:
    """Optional seams of a pass that is watched, or runs beside others; none changes a plan.

    `clock` gives each action its own time in the journal and snapshot (default: the pass's
    `now`). `progress` hears (phase, done, total) as work completes; apply counts in writes.
    `claim(pass_id, hibob_id)` is entered around the writes to one employee; it yields False
    when a later pass already decided for that employee, and the action is skipped as
    "superseded" (the service, whose targeted passes run beside a long one).
    """

    clock: Callable[[], datetime] | None = None
    progress: ProgressCallback | None = None
    claim: Callable[[int, str], AbstractContextManager[bool]] | None = None


@dataclass
class ApplyReport:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, outcome)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (hibob id, error)
    rejected: list[tuple[str, ApiRejected]] = field(default_factory=list)
    auth_error: ApiAuthFailed | None = None  # stopped the pass: credentials or scopes
    systemic_error: str | None = None  # the same rejection for most employees

    @property
    def has_failures(self) -> bool:
        return bool(self.failures) or self.auth_error is not None

    @property
    def pass_error(self) -> str | None:
        """Why the pass as a whole failed (credentials, scopes, or one error for most)."""
        if self.auth_error is not None:
            return str(self.auth_error)
        return self.systemic_error


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


def compute_quarantine_until(failures: int, now: datetime, base_seconds: float) -> datetime | None:
    """Pure: from QUARANTINE_AFTER failures, back off base × 2^n, capped at a day."""
    if failures < QUARANTINE_AFTER:
        return None
    backoff = base_seconds * 2 ** (failures - QUARANTINE_AFTER)
    return now + timedelta(seconds=min(backoff, QUARANTINE_MAX_SECONDS))


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


@dataclass
class _Runner:
    client: LearningClient
    store: Store
    settings: ApplySettings
    pass_id: int | None
    now: datetime
    report: ApplyReport
    hooks: PassHooks
    total: int = 0
    done: int = 0
    is_bulk: bool = False  # memberships wait for one bulk call after the actions
    deferred: list[tuple[Upsert, Membership]] = field(default_factory=list)
    is_platform_refused: bool = False  # reservedPlatformName: no external-id links this pass
    failed: set[str] = field(default_factory=set)  # whose restore or adoption failed: no manager
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self) -> datetime:
        return self.hooks.clock() if self.hooks.clock else self.now

    def tick(self, writes: int) -> None:
        with self._lock:
            self.done += writes
            done = self.done
        if self.hooks.progress:
            self.hooks.progress("apply", done, self.total)

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

    def _claimed(self, action: Action, name: str, writes: int, write: Callable[[], bool]) -> bool:
        claim = (
            self.hooks.claim(self.pass_id, action.hibob_id)
            if self.hooks.claim and self.pass_id is not None
            else nullcontext(True)
        )
        try:
            with claim as is_mine:
                if is_mine:
                    return write()
            with self._lock:
                self.report.outcomes[(name, "superseded")] += 1
            log.info(
                "%s %s %s skipped: a later pass already decided for this employee",
                name,
                action.hibob_id,
                action.email or "-",
                extra={"employee_id": action.hibob_id, "action": name, "outcome": "superseded"},
            )
            return False
        finally:
            self.tick(writes)

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

    def apply_links(self, action: Upsert) -> bool:
        return self._claimed(
            action, "manager", _link_writes(action), lambda: self._apply_links(action)
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

    def _apply_links(self, action: Upsert) -> bool:
        if self.report.auth_error is not None:
            return False
        if (
            action.manager is not None
            and action.manager.new
            and (not self._linked_user(action.manager.new) or action.manager.new in self.failed)
        ):
            # The manager has no account, or its own write failed this pass (its create, or a
            # restore refused): the snapshot keeps the previous link (saved by apply_action),
            # so the next pass plans this link again. One person's failure is not her team's.
            action = replace(action, manager=None)
            if not action.relink_subordinates:
                return True
        names: list[str] = [n for n in ("manager", "subordinates") if n in action.fields]

        def state_after() -> AppliedState:
            entry = self.store.get_entry(action.hibob_id)
            saved = entry.state if entry and entry.state else action.state
            assert saved is not None
            return replace(saved, manager=action.manager.new) if action.manager else saved

        return self._journalled(
            action, "manager", names, lambda: self._set_links(action), state_after
        )

    def _journalled(
        self,
        action: Action,
        name: str,
        fields: list[str],
        step: Callable[[], tuple[str | None, AppliedState | None]],
        state: AppliedState | Callable[[], AppliedState],
        keep_manager: bool = False,
    ) -> bool:
        journal_id = self.store.journal_start(
            self.pass_id,
            action.hibob_id,
            action.email,
            name,
            fields,
            action.reason,
            self.at(),
            is_released=action.is_released,
        )
        try:
            user_id, override = step()
        except ApiError as exc:
            self._fail(action, name, journal_id, exc)
            return False
        final = override or (state() if callable(state) else state)
        self._succeed(action, name, fields, journal_id, user_id, final, keep_manager)
        return True

    def _succeed(
        self,
        action: Action,
        name: str,
        fields: list[str],
        journal_id: int,
        user_id: str | None,
        state: AppliedState,
        keep_manager: bool = False,
    ) -> None:
        self.store.save_applied(
            action.hibob_id,
            learning_user_id=user_id,
            email=action.email,
            state=state,
            at=self.at(),
            keep_manager=keep_manager,
        )
        self.store.journal_finish(journal_id, "ok")
        self._report_ok(action, name, fields)

    def _report_ok(self, action: Action, name: str, fields: list[str]) -> None:
        with self._lock:
            self.report.outcomes[(name, "ok")] += 1
        log.info(
            "%s %s %s: %s",
            name,
            action.hibob_id,
            action.email or "-",
            action.reason,
            extra={
                "employee_id": action.hibob_id,
                "action": name,
                "outcome": "ok",
                "fields": fields,
            },
        )

    def _fail(self, action: Action, name: str, journal_id: int, exc: ApiError) -> None:
        error = str(exc)
        self.store.journal_finish(journal_id, "failed", error)
        with self._lock:
            if name == action.kind and isinstance(action, Reactivate | Adopt):
                self.failed.add(action.hibob_id)  # her account may still be deleted
            self.report.outcomes[(name, "failed")] += 1
            self.report.failures.append((action.hibob_id, error))
            if isinstance(exc, ApiAuthFailed) and self.report.auth_error is None:
                self.report.auth_error = exc
            if isinstance(exc, ApiRejected):
                self.report.rejected.append((action.hibob_id, exc))
        log.warning(
            "%s %s %s failed: %s",
            name,
            action.hibob_id,
            action.email or "-",
            error,
            extra={"employee_id": action.hibob_id, "action": name, "outcome": "failed"},
        )

    def record_failures(self) -> None:
        """Errors about one person's data (400 mailInvalid …) count toward quarantine."""
        for hibob_id, exc in self.report.rejected:
            entry = self.store.get_entry(hibob_id)
            failures = (entry.failures if entry else 0) + 1
            at = self.at()
            until = compute_quarantine_until(failures, at, self.settings.quarantine_base_seconds)
            self.store.record_failure(
                hibob_id,
                str(exc),
                quarantine_after=QUARANTINE_AFTER,
                quarantined_until=until,
                at=at,
            )

    # -- the steps: each returns (linked 360Learning user id, state to save instead) ----------
    def _step(self, action: Action) -> tuple[str | None, AppliedState | None]:
        """The action's step; then its custom-field values, with their own replace-all PUT."""
        custom: dict[str, Any] = {}
        if isinstance(action, Upsert):
            plain, custom = split_custom(action.changes)
            action = replace(action, changes=plain) if custom else action
        user_id, override = self._attribute_step(action)
        if custom and user_id:
            write_custom_values(self.client, user_id, custom, cached_definitions(self.store))
        return user_id, override

    def _attribute_step(self, action: Action) -> tuple[str | None, AppliedState | None]:
        match action:
            case Create():
                return self._create(action), None
            case Adopt():
                return self._adopt(action)
            case Reactivate():
                return self._reactivate(action)
            case Update():
                return self._update(action), None
            case Deactivate():
                return self._deactivate(action), None
        raise TypeError(f"unknown action {action!r}")

    def _create(self, action: Create) -> str:
        try:
            user, is_restored = self.client.create_user(
                action.changes,
                group_id=self.settings.group_id,
                role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email,
            )
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed" or not action.email:
                raise
            # The user exists (an earlier create whose answer was lost, or made by hand with
            # other letter case): decide on it by the core's rules, comparing mails locally.
            decision = self._decide_on_existing(action)
            if not isinstance(decision, Adopt):
                raise ApiRejected(
                    "360Learning",
                    400,
                    "mailAlreadyUsed",
                    decision.reason if isinstance(decision, Problem) else "the mail is used",
                ) from None
            return self._adopt(replace(decision, changes=split_custom(decision.changes)[0]))[0]
        self.store.save_link(action.hibob_id, user.learning_user_id, action.email, self.at())
        # A 200 restored a deleted account with this mail that the plan did not see: it is
        # unlinked (the plan refuses mails held by others' accounts), so adopt it fully.
        self._finish_user(action, user, skip_group=None if is_restored else self.settings.group_id)
        return user.learning_user_id

    def _decide_on_existing(self, action: Create) -> Action | Problem:
        mail = (action.email or "").lower()
        users = [u for u in self.client.find_users_by_mail(mail) if u.mail == mail]
        if not users:  # stored with other letter case: the filter's folding is undocumented
            users = [u for u in self.client.list_users() if u.mail == mail]
        roles = {
            u.learning_user_id: frozenset(self.client.list_user_roles(u.learning_user_id))
            for u in users
        }
        return compute_existing_user_decision(
            action, users, self.store.load_snapshot(), roles, self.now, self.settings.limits
        )

    def _adopt(self, action: Adopt) -> tuple[str, AppliedState | None]:
        assert action.learning_user_id
        self.store.save_link(action.hibob_id, action.learning_user_id, action.email, self.at())
        if action.restore:
            return self._restore_and_remail(action, action.restore_mail or action.email or "")
        user = self._update_attributes(action.learning_user_id, action.changes)
        self._finish_user(action, user)
        return action.learning_user_id, None

    def _update(self, action: Update) -> str:
        assert action.learning_user_id
        self._update_attributes(action.learning_user_id, action.changes)
        for group in action.remove_groups:
            self._ignore(
                ALREADY_DONE,
                self.client.remove_group_role,
                group.group_id,
                group.role,
                action.learning_user_id,
            )
        self._finish_user(action, None)
        return action.learning_user_id

    def _reactivate(self, action: Reactivate) -> tuple[str, AppliedState | None]:
        return self._restore_and_remail(action, action.restore_mail or action.email or "")

    def _restore_and_remail(
        self, action: Upsert, restore_mail: str
    ) -> tuple[str, AppliedState | None]:
        """Restore the linked account by its own mail, then PATCH a changed mail."""
        assert action.learning_user_id and action.state is not None
        attributes = {k: v for k, v in action.changes.items() if k != "mail"}
        user_id, membership = self._restore(action.learning_user_id, restore_mail, attributes)
        self._drop_subordinate_links(action)
        override = None
        new_mail = action.changes.get("mail")
        if new_mail and new_mail != restore_mail:
            try:
                self.client.update_user(user_id, {"mail": new_mail})
            except ApiRejected as exc:
                if exc.code != "mailAlreadyUsed":
                    raise
                # Restored, but the new mail belongs to another account: keep the account on
                # its old mail and report the conflict on this employee.
                keep = {**action.state.attributes, "mail": restore_mail}
                override = replace(action.state, attributes=keep)
                self._report_conflict(
                    action,
                    f"mail {new_mail} is used by another 360Learning account: kept {restore_mail}",
                )
        self._finish_user(action, None, skip_group=membership)
        return user_id, override

    def _drop_subordinate_links(self, action: Upsert) -> None:
        """A restore dropped "being the manager of others": record it on the subordinates, so
        that if relinking them fails or is cut short, their own next pass links them again."""
        self.store.drop_manager(action.hibob_id, among=action.relink_subordinates)

    def _restore(
        self, learning_user_id: str, mail: str, attributes: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Re-POST the mail of a deleted account; (its id, the group the POST made it join).

        Only while the account still holds that mail: one an admin pseudonymized or re-mailed
        while deleted would not be restored by it, and the POST would make a second account.
        """
        current = self.client.get_user(learning_user_id)
        if current is None or (current.is_deleted and current.mail != mail.strip().lower()):
            held = "is gone" if current is None else f"now holds {current.mail or 'no mail'}"
            raise AccountConflict(
                "accountReMailed" if current else "accountGone",
                f"the employee's deleted 360Learning account {learning_user_id} {held}, not "
                f"{mail} (pseudonymized or re-mailed by an admin?): restoring it by mail would "
                "create a second account; restore it by hand, or remove the link",
            )
        try:
            user, _ = self.client.create_user(
                {**attributes, "mail": mail},
                group_id=self.settings.group_id,
                role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email,
            )
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed":
                raise
            # Not deleted after all (an earlier apply stopped half-way): bring it up to date.
            self.client.update_user(learning_user_id, attributes)
            return learning_user_id, None
        if user.learning_user_id != learning_user_id:
            raise AccountConflict(
                "restoredOtherAccount",
                f"re-POSTing {mail} answered with account {user.learning_user_id},"
                f" not the employee's own {learning_user_id}; left for an admin",
            )
        return learning_user_id, self.settings.group_id

    def _deactivate(self, action: Deactivate) -> str | None:
        assert action.learning_user_id
        if not action.is_already_deleted:
            self._ignore(("userNotFound",), self.client.deactivate_user, action.learning_user_id)
        return action.learning_user_id

    def _update_attributes(self, user_id: str, changes: Any) -> LearningUser | None:
        return self.client.update_user(user_id, changes) if changes else None

    def _finish_user(
        self, action: Upsert, user: LearningUser | None, skip_group: str | None = None
    ) -> None:
        user_id = user.learning_user_id if user else action.learning_user_id
        if user_id is None:
            entry = self.store.get_entry(action.hibob_id)
            user_id = entry.learning_user_id if entry else None
        assert user_id
        if action.activate and (user is None or user.status != "active"):
            self.client.activate_user(user_id)
        for group in sorted(action.add_groups, key=lambda g: (g.group_id, g.role)):
            if group.group_id == skip_group and group.role == self.settings.role:
                continue  # the membership create already gave
            if self.is_bulk:
                with self._lock:
                    self.deferred.append((action, Membership(user_id, group.group_id, group.role)))
                continue
            self.client.add_group_role(group.group_id, group.role, user_id)
        if action.link_external_id:
            self._link_external_id(user_id, action.hibob_id)

    def _link_external_id(self, user_id: str, hibob_id: str) -> None:
        """Map the Hibob id to the account. A mapping of that value to another (or a deleted)
        account is repaired; a platform name 360Learning reserves stops linking for the pass
        (not the accounts' writes) and is remembered for `check`."""
        platform = self.settings.external_id_platform
        if not platform or self.is_platform_refused:
            return
        try:
            self.client.create_external_id(platform, user_id, hibob_id)
        except ApiRejected as exc:
            if exc.code == "mappingAlreadyExists":
                return  # the account has its mapping on this platform
            if exc.code == "reservedPlatformName":
                self._refuse_platform(platform, exc)
                return
            if exc.code != "valueAlreadyUsed":
                raise
            mapping = self.client.find_external_id(platform, hibob_id)
            if mapping is not None and mapping["targetId"] != user_id:
                log.warning(
                    "employee %s: external id %s on %r pointed to account %s, not %s: repaired",
                    hibob_id,
                    hibob_id,
                    platform,
                    mapping["targetId"],
                    user_id,
                    extra={"employee_id": hibob_id},
                )
                self.client.replace_external_id(mapping["_id"], platform, user_id, hibob_id)

    def _refuse_platform(self, platform: str, exc: ApiRejected) -> None:
        with self._lock:
            if self.is_platform_refused:
                return
            self.is_platform_refused = True
        self.store.save_service_state({REFUSED_PLATFORM_KEY: platform})
        log.warning(
            "learning.external_id_platform %r: %s; this pass writes no external-id links "
            '(choose another platform name, or "" for none)',
            platform,
            exc,
        )

    def add_deferred_memberships(self) -> None:
        """Add the memberships the actions deferred in bulk jobs (or one by one without the
        groups:bulk scope); a membership that failed is taken out of its employee's applied
        state, so the next pass plans it again."""
        if not self.deferred:
            return
        try:
            errors = add_memberships(self.client, [m for _, m in self.deferred])
        except ApiError as exc:
            errors = {m: str(exc) for _, m in self.deferred}
        for action, membership in self.deferred:
            error = errors.get(membership)
            if error is None:
                continue
            entry = self.store.get_entry(action.hibob_id)
            if entry and entry.state:
                lost = GroupRole(membership.group_id, membership.role)
                self.store.save_state(
                    action.hibob_id, replace(entry.state, groups=entry.state.groups - {lost})
                )
            journal_id = self.store.journal_start(
                self.pass_id,
                action.hibob_id,
                action.email,
                "groups",
                ["groups"],
                action.reason,
                self.at(),
            )
            self._fail(
                action,
                "groups",
                journal_id,
                ApiUnavailable("360Learning", None, "bulkMembershipFailed", error),
            )

    def _set_links(self, action: Upsert) -> tuple[str | None, AppliedState | None]:
        entry = self.store.get_entry(action.hibob_id)
        user_id = entry.learning_user_id if entry else None
        if user_id is None:
            return None, None
        if action.manager is not None:
            old, new = action.manager.old, action.manager.new
            old_id = action.manager.old_learning_user_id or (old and self._linked_user(old))
            if old_id:
                self._ignore(ALREADY_DONE, self.client.remove_manager, user_id, old_id)
            if new and (new_id := self._linked_user(new)):
                self.client.add_manager(user_id, new_id)
        for subordinate in action.relink_subordinates:
            entry = self.store.get_entry(subordinate)
            if entry is None or entry.learning_user_id is None or entry.state is None:
                continue
            try:
                self.client.add_manager(entry.learning_user_id, user_id)
            except ApiRejected as exc:
                if exc.code not in ("userDeleted", "managerDeleted"):
                    raise
                continue
            self.store.save_manager(subordinate, action.hibob_id)
        return user_id, None

    def move_mails(self, moves: Mapping[str, tuple[str, str]], by_id: Mapping[str, Action]) -> None:
        """Swaps and rotations: one PATCH at a time, in the order `compute_mail_moves` gives,
        each to a free mail (a cycle parks one account on a mail of its own first)."""
        if not moves or self.report.auth_error is not None:
            return
        updates = {h: by_id[h] for h in sorted(moves)}
        journal = {
            h: self.store.journal_start(
                self.pass_id,
                h,
                a.email,
                "update",
                ["mail"],
                f"email swap or rotation: {a.reason}",
                self.at(),
            )
            for h, a in updates.items()
        }
        failed: dict[str, ApiError] = {}
        for hibob_id, mail in compute_mail_moves(moves):
            if hibob_id in failed:
                continue
            user_id = updates[hibob_id].learning_user_id
            assert user_id
            try:
                self.client.update_user(user_id, {"mail": mail})
            except ApiError as exc:
                failed[hibob_id] = exc
        for hibob_id, action in updates.items():
            if hibob_id in failed:
                self._fail(action, "update", journal[hibob_id], failed[hibob_id])
                continue
            entry = self.store.get_entry(hibob_id)
            base = entry.state if entry and entry.state else action.state
            assert base is not None
            state = replace(base, attributes={**base.attributes, "mail": moves[hibob_id][1]})
            self._succeed(
                action, "update", ["mail"], journal[hibob_id], action.learning_user_id, state
            )

    def _linked_user(self, hibob_id: str) -> str | None:
        entry = self.store.get_entry(hibob_id)
        return entry.learning_user_id if entry else None

    def _report_conflict(self, action: Action, error: str) -> None:
        journal_id = self.store.journal_start(
            self.pass_id,
            action.hibob_id,
            action.email,
            "update",
            ["mail"],
            action.reason,
            self.at(),
        )
        self._fail(action, "update", journal_id, AccountConflict("mailAlreadyUsed", error))

    @staticmethod
    def _ignore(codes: tuple[str, ...], call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except ApiRejected as exc:
            if exc.code not in codes:
                raise


def _stored_mails(store: Store, actions: Iterable[Action]) -> dict[str, str]:
    """The mail each updated account holds now, for updates that change it."""
    mails = {}
    for action in actions:
        if isinstance(action, Update) and action.changes.get("mail"):
            entry = store.get_entry(action.hibob_id)
            held = entry.state.attributes.get("mail") if entry and entry.state else None
            if isinstance(held, str) and held:
                mails[action.hibob_id] = held
    return mails


def _without_mail(action: Action) -> Action:
    """The update minus its mail, which `move_mails` writes; until then the snapshot keeps
    the account's present mail."""
    assert isinstance(action, Update) and action.state is not None
    entry_mail = action.state.attributes.get("mail")
    changes = {k: v for k, v in action.changes.items() if k != "mail"}
    return replace(
        action,
        changes=changes,
        state=replace(action.state, attributes={**action.state.attributes, "mail": entry_mail}),
    )


def _has_links(action: Action) -> bool:
    return isinstance(action, Upsert) and (
        action.manager is not None or bool(action.relink_subordinates)
    )


def _link_writes(action: Action) -> int:
    if not isinstance(action, Upsert):
        return 0
    change = action.manager
    manager = 0 if change is None else max(1, (change.old is not None) + (change.new is not None))
    return manager + len(action.relink_subordinates)


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
