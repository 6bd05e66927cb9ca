"""Apply, the runner's base: what apply is given and reports, and the bookkeeping of each write.

`ApplySettings`, `PassHooks` and `ApplyReport`; `RunnerBase`, the state of one apply (client,
store, report, progress, the claims of a service pass) and what every step shares: the journal
row before a write, the outcome after it, the report, quarantine. The steps are mixins on it
(`apply_accounts`, `apply_links`, `apply_deferred`) that `apply._Runner` puts together, as
`LearningClient` puts its parts together on `LearningApi`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler.clients.learning import LearningClient
from reconciler.clients.learning_groups import Membership
from reconciler.core.models import Action, Adopt, AppliedState, Reactivate, Upsert
from reconciler.core.plan import Limits
from reconciler.errors import AccountConflict, ApiAuthFailed, ApiError, ApiRejected
from reconciler.store.database import Store

log = logging.getLogger("reconciler.passes.apply")  # apply's records keep one logger name
QUARANTINE_AFTER = 3
QUARANTINE_MAX_SECONDS = 86400.0
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


def compute_quarantine_until(failures: int, now: datetime, base_seconds: float) -> datetime | None:
    """Pure: from QUARANTINE_AFTER failures, back off base × 2^n, capped at a day."""
    if failures < QUARANTINE_AFTER:
        return None
    backoff = base_seconds * 2 ** (failures - QUARANTINE_AFTER)
    return now + timedelta(seconds=min(backoff, QUARANTINE_MAX_SECONDS))


@dataclass
class RunnerBase:
    """The state of one apply and what every step shares; `apply._Runner` adds the steps."""

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
