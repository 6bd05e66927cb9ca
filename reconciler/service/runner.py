"""The service's state and its passes: `ServiceRunner` builds the metrics, notifier, hint worker
and admin requests, runs scheduled, targeted and admin-requested passes under one lock, computes
readiness, and holds the worker loops that serve admin requests; `Service` (lifecycle) adds
start, stop and the systemd notifications.

Moved out of `lifecycle` unchanged; its log lines keep the `reconciler.service.lifecycle` logger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from reconciler.core.models import Plan
from reconciler.core.vocabulary import PassKind, PassOutcome
from reconciler.passes.apply import PassHooks, ProgressCallback
from reconciler.passes.context import PassContext, now_utc
from reconciler.passes.progress import PassProgress
from reconciler.passes.reconcile import PassResult, run_pass
from reconciler.service.admin_requests import AdminRequests
from reconciler.service.admin_views import AdminViews
from reconciler.service.hints import EmployeeClaims, HintWorker
from reconciler.service.metrics import SUCCESSFUL_OUTCOMES, Metrics
from reconciler.service.notify import Notifier
from reconciler.service.webserver import WebhookServer
from reconciler.store.database import Store, utc_text

log = logging.getLogger("reconciler.service.lifecycle")

PROGRESS_LOG_SECONDS = 10.0
"""A long pass logs its progress (done/total, rate, ETA) this often..."""
PROGRESS_SAVE_SECONDS = 2.0
"""... and saves it for `reconciler status` this often."""
Clock = Callable[[], datetime]


def readiness_bound(interval_minutes: float) -> timedelta:
    """How old the last successful pass may be: three intervals, never less than the interval
    plus 10 minutes (so a short interval does not flap on one slow pass)."""
    interval = timedelta(minutes=interval_minutes)
    return max(3 * interval, interval + timedelta(minutes=10))


def compute_readiness(
    last_success_at: datetime | None,
    now: datetime,
    interval_minutes: float,
    last_failure: str | None = None,
) -> tuple[bool, str]:
    """Ready while the last successful pass is recent; the text says why, failure first."""
    cause = f"last pass failed: {last_failure}; " if last_failure else ""
    if last_success_at is None:
        return False, f"{cause}no successful pass yet"
    age, bound = now - last_success_at, readiness_bound(interval_minutes)
    text = f"{cause}last successful pass {int(age.total_seconds())} s ago"
    if age > bound:
        return False, f"{text}, over the {int(bound.total_seconds())} s bound"
    return True, text


class ServiceRunner:
    """The state and passes of `Service`; see the module docstring."""

    def __init__(
        self,
        services: PassContext,
        *,
        clock: Clock = now_utc,
        monotonic: Callable[[], float] = time.monotonic,
        admin_views: AdminViews | None = None,
    ) -> None:
        self.services, self.settings, self.store = services, services.settings, services.store
        self._admin_views = admin_views
        last = self.store.last_successful_pass_at()
        self._last_success_at = datetime.fromisoformat(last) if last else None
        self.metrics = Metrics(
            api_stats=self._api_stats,
            last_success_epoch=(
                self._last_success_at.timestamp() if self._last_success_at else None
            ),
        )
        self.metrics.watch_state(
            pending_hints=self.store.count_pending_hints,
            held_deactivations=lambda: len(self.store.list_held()),
            quarantined=lambda: len(self.store.list_quarantined(self._clock())),
            managed_users=self.store.count_managed,
        )
        self.metrics.watch_shadow(self.store.count_open_disagreements_by_kind)
        self.notifier = Notifier(self.settings.notify, self.store)
        self._last_failure = _last_scheduled_failure(self.store)
        self.is_stop_requested = False
        self._clock, self._monotonic = clock, monotonic
        self._pass_lock = threading.Lock()
        self._closing = threading.Event()
        self._notify_lock = threading.Lock()
        self._is_stopping = False
        self._is_ready = False  # READY sent: watchdog pings may follow
        self._wake = threading.Event()
        self.claims = EmployeeClaims(self.store)
        self.hints = HintWorker(
            self.store,
            run_targeted=self.run_targeted,
            run_batch=self.run_incremental,
            is_busy=self._pass_lock.locked,
            on_change=self.update_state,
            clock=clock,
            monotonic=monotonic,
            coalesce_seconds=self.settings.webhooks.coalesce_seconds,
            retention_days=self.settings.webhooks.retention_days,
        )
        self._server: WebhookServer | None = None
        self._admin_server: WebhookServer | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._worker: threading.Thread | None = None
        self._quick_worker: threading.Thread | None = None
        self._quick_wake = threading.Event()
        self.requests = AdminRequests(
            self.store,
            run=self._run_pass,
            clock=clock,
            wake=self._wake.set,
            run_beside=self._run_beside,
            wake_quick=self._quick_wake.set,
        )

    # -- passes -----------------------------------------------------------------------------
    def run_incremental(self) -> PassResult | None:
        return self._run_pass(PassKind.INCREMENTAL)

    def run_full(self) -> PassResult | None:
        return self._run_pass(PassKind.FULL)

    def _run_pass(
        self, kind: PassKind, employee: str | None = None, **options: Any
    ) -> PassResult | None:
        """One pass under the pass lock; None when not run because the service is stopping."""
        while not self._pass_lock.acquire(timeout=0.2):
            if self._closing.is_set():
                return None
        try:
            if self._closing.is_set():
                return None
            progress = PassProgress(
                f"{kind} pass",
                set_gauges=self.metrics.set_progress,
                save_state=self.store.save_service_state,
                log_every_seconds=PROGRESS_LOG_SECONDS,
                save_every_seconds=PROGRESS_SAVE_SECONDS,
            )
            try:
                return self._run_and_record(kind, employee, progress.tracker, **options)
            finally:
                progress.finish()
        finally:
            self._pass_lock.release()

    def _run_beside(
        self, kind: PassKind, employee: str | None = None, **options: Any
    ) -> PassResult | None:
        """An admin's one-employee pass, beside any long pass (as a hint's)."""
        if self._closing.is_set():
            return None
        if kind != PassKind.TARGETED:  # not one employee's: it waits for the pass lock
            return self._run_pass(kind, employee, **options)
        return self._run_and_record(PassKind.TARGETED, employee, **options)

    def run_targeted(self, hibob_id: str) -> PassResult | None:
        """A hinted employee's pass, beside any long pass (not under the pass lock): its writes
        are ordered against the long pass's by `claims`. None when the service is stopping."""
        if self._closing.is_set():
            return None
        return self._run_and_record(PassKind.TARGETED, hibob_id)

    def _run_and_record(
        self,
        kind: PassKind,
        employee: str | None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> PassResult:
        self.metrics.pass_started(kind)
        hooks = PassHooks(clock=self._clock, claim=self.claims.claim, progress=progress)
        try:
            result = run_pass(
                self.services, kind, now=self._clock(), employee=employee, hooks=hooks, **options
            )
        except Exception as exc:
            log.exception(
                "%s pass stopped by an unexpected error",
                kind,
                extra={"kind": kind, "outcome": "failed"},
            )
            result = PassResult(
                0, kind, Plan(), outcome=PassOutcome.FAILED, error=f"{type(exc).__name__}: {exc}"
            )
        finished = self._clock()
        if result.outcome in SUCCESSFUL_OUTCOMES:
            self._last_success_at = finished
            if kind == PassKind.FULL:  # it read everyone: the hints parked before it are done
                self.store.settle_parked_hints(finished)
        if kind != PassKind.TARGETED:  # one employee's failure says nothing about the service
            self._last_failure = result.error if result.outcome == "failed" else None
        actions = dict(result.report.outcomes) if result.report else {}
        self.metrics.record_pass(
            kind, result.outcome, result.duration_seconds, finished.timestamp(), actions
        )
        self.notifier.after_pass(kind, result.outcome, result.error, finished)
        self.update_state()
        return result

    def update_state(self) -> None:
        if self._scheduler:  # for `reconciler status`
            self.store.save_service_state(
                {
                    f"next_{job_id}_at": utc_text(job.next_run_time) if job.next_run_time else None
                    for job_id in ("incremental", "full")
                    if (job := self._scheduler.get_job(job_id)) is not None
                }
            )

    def is_ready(self) -> tuple[bool, str]:
        return compute_readiness(
            self._last_success_at,
            self._clock(),
            self.settings.sync.interval_minutes,
            self._last_failure,
        )

    def _api_stats(self) -> dict[str, tuple[int, int]]:
        stats = {
            "hibob": self.services.hibob.stats.snapshot(),
            "learning": self.services.learning.stats.snapshot(),
        }
        return {name: (s["calls"], s["rate_limited"]) for name, s in stats.items()}

    def _work_quick(self) -> None:
        while not self._closing.is_set():
            self._quick_wake.wait()
            self._quick_wake.clear()
            if self._closing.is_set():
                break
            try:
                self.requests.serve_quick()
            except Exception:
                log.exception("admin requests: serving failed; retrying in 5 s")
                if not self._closing.wait(5.0):
                    self._quick_wake.set()

    def _work(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._closing.is_set():
                break
            try:
                self.requests.serve()
            except Exception:
                log.exception("admin requests: serving failed; retrying in 5 s")
                if not self._closing.wait(5.0):
                    self._wake.set()


def _last_scheduled_failure(store: Store) -> str | None:
    """The error of the last scheduled pass when it failed (kept across restarts)."""
    for row in store.list_passes(20, include_dry_runs=False):
        if row.kind != PassKind.TARGETED and row.finished_at:
            return (row.error or "unknown error") if row.outcome == PassOutcome.FAILED else None
    return None
