"""Apply: execute a Plan through LearningClient; journal before sending, record outcomes after.

Called by reconcile with the same Plan a dry run prints. One failing employee never stops the
pass: its error is journalled and counted towards quarantine. The snapshot advances only for
what was applied. Manager links go last, once every user of the pass has its account.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from reconciler.errors import ApiError, ApiRejected
from reconciler.learning import LearningClient
from reconciler.models import LearningUser
from reconciler.plan import Action, Plan
from reconciler.store import Store, utc_text

log = logging.getLogger("reconciler.apply")
QUARANTINE_AFTER = 3


@dataclass(frozen=True)
class ApplySettings:
    group_id: str
    role: str
    send_invitation_email: bool
    external_id_platform: str
    quarantine_base_seconds: float = 900.0
    max_workers: int = 4


ProgressCallback = Callable[[str, int, int | None], None]
"""(phase, done, total): "read", "plan" or "apply"; total is None while unknown."""


@dataclass(frozen=True)
class PassHooks:
    """Optional seams of a pass that is watched, or runs beside others; none changes a plan.

    `clock` gives each action its own time in the journal and snapshot (default: the pass's
    `now`). `progress` hears (phase, done, total) as work completes. `claim(pass_id, hibob_id)`
    is entered around the writes to one employee; it yields False when a later pass already
    decided for that employee, and the action is skipped as "superseded" (the service).
    """

    clock: Callable[[], datetime] | None = None
    progress: ProgressCallback | None = None
    claim: Callable[[int, str], AbstractContextManager[bool]] | None = None


@dataclass
class ApplyReport:
    outcomes: Counter = field(default_factory=Counter)  # (action, outcome) -> count
    failures: list[tuple[str, str]] = field(default_factory=list)  # (hibob id, error)

    @property
    def has_failures(self) -> bool:
        return bool(self.failures)


def apply_plan(plan: Plan, *, client: LearningClient, store: Store, settings: ApplySettings,
               pass_id: int | None, now: datetime, hooks: PassHooks | None = None
               ) -> ApplyReport:
    report = ApplyReport()
    hooks = hooks or PassHooks()
    run = _Runner(client, store, settings, pass_id, now, report, hooks)
    managers = [a for a in plan.actions if a.manager is not None]
    run.total = sum(map(run.weight, plan.actions)) + sum(map(_manager_writes, managers))
    run.tick(0)
    pool = ThreadPoolExecutor(max_workers=settings.max_workers)
    try:
        done = [a for a, ok in zip(plan.actions, pool.map(run.apply_action, plan.actions),
                                   strict=True) if ok]
        with_manager = [a for a in done if a.manager is not None]
        run.tick(sum(map(_manager_writes, managers)) - sum(map(_manager_writes, with_manager)))
        list(pool.map(run.apply_manager, with_manager))
    finally:
        # On Ctrl-C: what has not started never starts; what has finishes and is journalled.
        pool.shutdown(wait=True, cancel_futures=True)
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
    _tick_lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self) -> datetime:
        return self.hooks.clock() if self.hooks.clock else self.now

    def tick(self, count: int = 1) -> None:
        with self._tick_lock:
            self.done += count
            done = self.done
        if self.hooks.progress:
            self.hooks.progress("apply", done, self.total)

    def weight(self, action: Action) -> int:
        """About how many writes the action sends: progress counts in writes, so the ETA holds
        while slow creates give way to one-write manager links."""
        if action.kind == "deactivate":
            return 1
        writes = int(action.kind in ("create", "reactivate") or bool(action.changes))
        writes += int(action.activate) + len(action.add_groups) + len(action.remove_groups)
        if action.kind in ("create", "reactivate") and any(
                g.group_id == self.settings.group_id and g.role == self.settings.role
                for g in action.add_groups):
            writes -= 1  # the membership comes with the create
        if action.kind in ("create", "adopt") and self.settings.external_id_platform:
            writes += 1
        return max(1, writes)

    def _claimed(self, action: Action, name: str, write: Callable[[], bool]) -> bool:
        claim = (self.hooks.claim(self.pass_id, action.hibob_id)
                 if self.hooks.claim and self.pass_id is not None else nullcontext(True))
        try:
            with claim as is_mine:
                if is_mine:
                    return write()
            self.report.outcomes[(name, "superseded")] += 1
            log.info("%s %s %s skipped: a later pass already decided for this employee", name,
                     action.hibob_id, action.email or "-",
                     extra={"employee_id": action.hibob_id, "action": name,
                            "outcome": "superseded"})
            return False
        finally:
            self.tick(_manager_writes(action) if name == "manager" else self.weight(action))

    def apply_action(self, action: Action) -> bool:
        return self._claimed(action, action.kind, lambda: self._apply_action(action))

    def _apply_action(self, action: Action) -> bool:
        steps: dict[str, Callable[[Action], str | None]] = {
            "create": self._create, "adopt": self._adopt, "update": self._update,
            "reactivate": self._reactivate, "deactivate": self._deactivate,
        }
        # Until its manager link is applied, the snapshot keeps the previous manager.
        manager = action.manager[0] if action.manager else action.state.get("manager")
        return self._journalled(action, action.kind, action.fields,
                                lambda: steps[action.kind](action),
                                lambda: {**action.state, "manager": manager})

    def apply_manager(self, action: Action) -> bool:
        return self._claimed(action, "manager", lambda: self._apply_manager(action))

    def _apply_manager(self, action: Action) -> bool:
        def saved_state_with_new_manager() -> dict[str, Any]:
            entry = self.store.get_entry(action.hibob_id)
            saved = (entry.state if entry else None) or action.state
            return {**saved, "manager": action.manager[1] if action.manager else None}

        return self._journalled(action, "manager", ["manager"],
                                lambda: self._set_manager(action), saved_state_with_new_manager)

    def _journalled(self, action: Action, name: str, fields: list[str],
                    step: Callable[[], str | None],
                    state_after: Callable[[], dict[str, Any]]) -> bool:
        journal_id = self.store.journal_start(self.pass_id, action.hibob_id, action.email, name,
                                              fields, action.reason, self.at())
        try:
            user_id = step()
        except ApiError as exc:
            self._fail(action, name, journal_id, str(exc))
            return False
        self.store.save_applied(action.hibob_id, learning_user_id=user_id, email=action.email,
                                state=state_after(), at=self.at())
        self.store.journal_finish(journal_id, "ok")
        self.report.outcomes[(name, "ok")] += 1
        log.info("%s %s %s: %s", name, action.hibob_id, action.email or "-", action.reason,
                 extra={"employee_id": action.hibob_id, "action": name, "outcome": "ok",
                        "fields": fields})
        return True

    def _fail(self, action: Action, name: str, journal_id: int, error: str) -> None:
        entry = self.store.get_entry(action.hibob_id)
        count = (entry.failures if entry else 0) + 1
        backoff = self.settings.quarantine_base_seconds * 2 ** max(0, count - QUARANTINE_AFTER)
        at = self.at()
        until = utc_text(at + timedelta(seconds=min(backoff, 86400)))
        self.store.record_failure(action.hibob_id, error, quarantine_after=QUARANTINE_AFTER,
                                  quarantined_until=until, at=at)
        self.store.journal_finish(journal_id, "failed", error)
        self.report.outcomes[(name, "failed")] += 1
        self.report.failures.append((action.hibob_id, error))
        log.warning("%s %s %s failed: %s", name, action.hibob_id, action.email or "-", error,
                    extra={"employee_id": action.hibob_id, "action": name,
                           "outcome": "failed"})

    # -- the steps: each returns the linked 360Learning user id ------------------------------
    def _create(self, action: Action) -> str:
        try:
            user, _ = self.client.create_user(
                action.changes, group_id=self.settings.group_id, role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email)
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed" or not action.email:
                raise
            # The user exists (an earlier create whose answer was lost, or made by hand).
            found = self.client.find_users_by_mail(action.email)
            if len(found) != 1:
                raise
            return self._adopt(_as_adoption(action, found[0]))
        self.store.save_link(action.hibob_id, user.learning_user_id, action.email, self.at())
        self._finish_user(action, user, skip_group=self.settings.group_id)
        return user.learning_user_id

    def _adopt(self, action: Action) -> str:
        assert action.learning_user_id
        self.store.save_link(action.hibob_id, action.learning_user_id, action.email, self.at())
        if action.restore:
            return self._reactivate(action)
        user = self._update_attributes(action)
        self._finish_user(action, user)
        return action.learning_user_id

    def _update(self, action: Action) -> str:
        assert action.learning_user_id
        self._update_attributes(action)
        for group in action.remove_groups:
            self._ignore(("userNotFoundInGroup",), self.client.remove_group_role, group.group_id,
                         group.role, action.learning_user_id)
        self._finish_user(action, None)
        return action.learning_user_id

    def _reactivate(self, action: Action) -> str:
        # 360Learning restores a deleted user when its mail is POSTed again (200, invited).
        assert action.learning_user_id
        attributes = {k: v for k, v in action.state["attributes"].items() if v is not None}
        try:
            user, _ = self.client.create_user(
                attributes, group_id=self.settings.group_id, role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email)
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed":
                raise
            # Not deleted after all (an earlier apply stopped half-way): bring it up to date.
            user = self.client.update_user(action.learning_user_id, attributes)
        if user.learning_user_id != action.learning_user_id:
            self.store.save_link(action.hibob_id, user.learning_user_id, action.email, self.at())
        self._finish_user(action, user, skip_group=self.settings.group_id)
        return user.learning_user_id

    def _deactivate(self, action: Action) -> str | None:
        assert action.learning_user_id
        self._ignore(("userNotFound",), self.client.deactivate_user, action.learning_user_id)
        return action.learning_user_id

    def _update_attributes(self, action: Action) -> LearningUser | None:
        assert action.learning_user_id
        if not action.changes:
            return None
        return self.client.update_user(action.learning_user_id, action.changes)

    def _finish_user(self, action: Action, user: LearningUser | None,
                     skip_group: str | None = None) -> None:
        user_id = user.learning_user_id if user else action.learning_user_id
        assert user_id
        if action.activate and (user is None or user.status != "active"):
            self.client.activate_user(user_id)
        for group in sorted(action.add_groups, key=lambda g: (g.group_id, g.role)):
            if group.group_id == skip_group and group.role == self.settings.role:
                continue  # the membership create already gave
            self.client.add_group_role(group.group_id, group.role, user_id)
        platform = self.settings.external_id_platform
        if platform and action.kind in ("create", "adopt"):
            self._ignore(("mappingAlreadyExists", "valueAlreadyUsed"),
                         self.client.create_external_id, platform, user_id, action.hibob_id)

    def _set_manager(self, action: Action) -> str | None:
        assert action.manager is not None
        entry = self.store.get_entry(action.hibob_id)
        user_id = entry.learning_user_id if entry else None
        old, new = action.manager
        if user_id is None:
            return None
        if old and (old_entry := self.store.get_entry(old)) and old_entry.learning_user_id:
            self._ignore(("managerNotAssignedToUser", "managerNotFound"),
                         self.client.remove_manager, user_id, old_entry.learning_user_id)
        if new and (new_entry := self.store.get_entry(new)) and new_entry.learning_user_id:
            self.client.add_manager(user_id, new_entry.learning_user_id)
        return user_id

    @staticmethod
    def _ignore(codes: tuple[str, ...], call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except ApiRejected as exc:
            if exc.code not in codes:
                raise


def _manager_writes(action: Action) -> int:
    return 1 + (action.manager is not None and action.manager[0] is not None)


def _as_adoption(action: Action, user: LearningUser) -> Action:
    return replace(action, kind="adopt", learning_user_id=user.learning_user_id,
                   restore=user.is_deleted,
                   activate=action.activate and user.status != "active")
