"""The hint worker: turns stored webhook hints into targeted passes that run beside a long pass.

Owned by the service. Coalesces hints per employee (one pass in flight per employee; hints that
arrive meanwhile share one follow-up pass), re-reads each hinted employee once after Hibob's
stale-read window, and keeps a hint until a pass has succeeded for its employee (retried with
capped backoff, across restarts, a bounded number of times: then it is parked until the next
full pass, which reads everyone). Decides nothing about users: every pass is `run_pass`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from reconciler.errors import ApiAuthFailed, ApiError
from reconciler.passes.reconcile import PassResult
from reconciler.service.metrics import SUCCESSFUL_OUTCOMES
from reconciler.service.webhooks import Hint
from reconciler.store.database import Store
from reconciler.store.records import HintRecord

log = logging.getLogger("reconciler.service.hints")

STALE_READ_SECONDS = 25.0
"""Hibob reads may lag a write by ~20 s: a hinted employee is re-read once after this."""
MAX_TARGETED_PER_BATCH = 10
"""Above this many employees due at once, one search (incremental pass) is cheaper than that
many single reads (Hibob allows ~50 a minute) - unless a long pass holds the pass lock."""
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 300.0
"""A hint whose pass failed is tried again after 5 s, 10 s, 20 s ... and at most every 5 min."""
MAX_HINT_ATTEMPTS = 50
"""Tries before a failing hint is parked until the next full pass: about 4 hours of retries,
which outlast an outage (the scheduled passes cover the employee meanwhile)."""
MAX_FORBIDDEN_ATTEMPTS = 3
"""Tries when Hibob answers 403 to the read of that one employee, its documented answer for
someone the service user may not see: a retry every 5 minutes would never help."""
GATHER_SECONDS = 0.05
"""Deliveries that land together (Bob sends several events for one change) share a pass."""
MAX_PARALLEL = 4
PRUNE_EVERY = timedelta(hours=1)  # done hints past webhooks.retention_days are deleted
STRIPES = 256


class EmployeeClaims:
    """Orders writes to one employee across the service's overlapping passes.

    A pass id grows with the time the pass started reading, so the later pass holds the newer
    decision. `claim` is entered around the writes to one employee: it waits for another pass
    writing to the same employee, then yields whether this pass may write (False: a later pass
    already did, and this pass's older read must not overwrite it).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        # Striped, so memory stays flat at 100k employees; two employees sharing a stripe only
        # wait for each other's few writes.
        self._locks = [threading.Lock() for _ in range(STRIPES)]

    @contextmanager
    def claim(self, pass_id: int, hibob_id: str) -> Iterator[bool]:
        with self._locks[hash(hibob_id) % STRIPES]:
            yield self._store.claim_employee(hibob_id, pass_id)


class HintWorker:
    """Serves hints on its own threads; `start`, `on_hint`, `process_hints`, `stop`.

    `run_targeted(hibob_id)` runs one targeted pass (None when the service is stopping);
    `run_batch()` one incremental pass for many employees at once, used only while `is_busy()`
    says no long pass holds the pass lock; `on_change()` refreshes the service's gauges.
    """

    def __init__(
        self,
        store: Store,
        *,
        run_targeted: Callable[[str], PassResult | None],
        run_batch: Callable[[], PassResult | None],
        is_busy: Callable[[], bool],
        on_change: Callable[[], None],
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        coalesce_seconds: float,
        retention_days: int = 7,
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        self.store = store
        self._run_targeted, self._run_batch, self._is_busy = run_targeted, run_batch, is_busy
        self._on_change, self._clock, self._monotonic = on_change, clock, monotonic
        self._coalesce_seconds = coalesce_seconds
        self._retention = timedelta(days=retention_days)
        self._pruned_at: datetime | None = None
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._last_started: dict[str, float] = {}
        self._rechecks: dict[str, float] = {}
        self._next_spacing_at: float | None = None
        self._wake, self._closing = threading.Event(), threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="hint-pass")
        self._futures: set[Future[Any]] = set()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hint-worker", daemon=True)
        self._thread.start()
        self._wake.set()  # hints a previous run left pending

    def stop(self, deadline: float, monotonic: Callable[[], float]) -> bool:
        """Stop taking work; True when no targeted pass was still running at `deadline`."""
        self._closing.set()
        self._wake.set()
        if self._thread:
            self._thread.join(max(0.0, deadline - monotonic()))
        with self._lock:
            running = list(self._futures)
        done, not_done = wait_futures(running, timeout=max(0.0, deadline - monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        return not not_done and not (self._thread and self._thread.is_alive())

    def on_hint(self, hint: Hint) -> None:
        """Store the hint durably (before the receiver answers 202), then wake the worker."""
        self.store.save_hint(
            hint.hibob_id, hint.event_type, hint.source, hint.triggered_at, self._clock()
        )
        self._wake.set()

    def process_hints(self) -> int:
        """Start every pass that is due now and wait for them; returns how many ran."""
        futures = self._dispatch()
        return sum(1 for f in futures if f.result() is not None)

    # -- the dispatcher -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self._next_due_in())
            if self._closing.is_set():
                break
            if self._wake.is_set():
                self._closing.wait(GATHER_SECONDS)
                self._wake.clear()
            try:
                self._dispatch()
            except Exception:
                log.exception("hint worker: dispatch failed; retrying in 5 s")
                if not self._closing.wait(5.0):
                    self._wake.set()

    def _dispatch(self) -> list[Future[Any]]:
        """Start a pass for each employee that is due and not already being served."""
        if self._closing.is_set():
            return []
        self._prune_done_hints()
        by_employee: dict[str, list[HintRecord]] = {}
        for hint in self.store.list_pending_hints(due_at=self._clock()):
            by_employee.setdefault(hint.hibob_id, []).append(hint)
        with self._lock:
            now = self._monotonic()
            due = list(by_employee) + [
                h for h, at in self._rechecks.items() if at <= now and h not in by_employee
            ]
            ready, spacing = [], []
            for hibob_id in due:
                free_at = self._last_started.get(hibob_id, -1e18) + self._coalesce_seconds
                if hibob_id in self._in_flight:
                    continue  # served again when its pass ends (it wakes the dispatcher)
                if free_at > now:
                    spacing.append(free_at)
                    continue
                ready.append(hibob_id)
            self._next_spacing_at = min(spacing, default=None)
            if not ready:
                return []
            for hibob_id in ready:
                self._rechecks.pop(hibob_id, None)
                self._in_flight.add(hibob_id)
                self._last_started[hibob_id] = now
            self._forget_old_starts(now)
        wanted = {h: by_employee.get(h, []) for h in ready}
        log.info(
            "hints: %d employee(s) to re-read",
            len(ready),
            extra={"employee_ids": ready, "hints": sum(len(hints) for hints in wanted.values())},
        )
        if len(ready) > MAX_TARGETED_PER_BATCH and not self._is_busy():
            jobs = [self._pool.submit(self._serve_batch, wanted)]
        else:
            jobs = [self._pool.submit(self._serve_one, h, ids) for h, ids in wanted.items()]
        with self._lock:
            self._futures.update(jobs)
        for job in jobs:
            job.add_done_callback(self._forget_future)
        return jobs

    def _prune_done_hints(self) -> None:
        """Delete hints done longer ago than the retention, at most once an hour."""
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        pruned = self.store.prune_done_hints(now - self._retention)
        if pruned:
            log.info("hints: %d done hint(s) pruned", pruned, extra={"hints": pruned})

    def _forget_future(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _forget_old_starts(self, now: float) -> None:
        horizon = now - self._coalesce_seconds
        for hibob_id in [h for h, at in self._last_started.items() if at < horizon]:
            del self._last_started[hibob_id]

    def _next_due_in(self) -> float | None:
        """Seconds until a re-check, a spaced follow-up or a retry is due (None: none waits)."""
        now = self._monotonic()
        with self._lock:
            moments = [*self._rechecks.values()]
            if self._next_spacing_at is not None:
                moments.append(self._next_spacing_at)
        waits = [max(0.0, at - now) for at in moments]
        current = self._clock()
        retry_at = self.store.next_hint_attempt_at(after=current)
        if retry_at is not None:
            waits.append(max(0.0, (retry_at - current).total_seconds()))
        return min(waits, default=None)

    # -- one job ----------------------------------------------------------------------------
    def _serve_one(self, hibob_id: str, hints: list[HintRecord]) -> PassResult | None:
        try:
            result = self._run_targeted(hibob_id)
            if result is not None:
                self._settle(hibob_id, hints, result)
            return result
        except Exception as exc:
            log.exception(
                "targeted pass for employee %s stopped by an unexpected error",
                hibob_id,
                extra={"employee_id": hibob_id},
            )
            self._retry(hints, f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._finish([hibob_id])

    def _serve_batch(self, wanted: dict[str, list[HintRecord]]) -> PassResult | None:
        try:
            result = self._run_batch()
            if result is None:
                return None
            failed = {h for h, _ in result.report.failures} if result.report else set()
            for hibob_id, hints in wanted.items():
                if result.outcome in SUCCESSFUL_OUTCOMES or (
                    result.outcome == "errors" and hibob_id not in failed
                ):
                    self._done(hibob_id, hints)
                else:
                    self._retry(hints, result.error or f"incremental pass {result.outcome}")
            log.info(
                "hint batch: %d employee(s) served by incremental pass %s: %s",
                len(wanted),
                result.pass_id,
                result.outcome,
                extra={"pass_id": result.pass_id, "outcome": result.outcome},
            )
            return result
        except Exception as exc:
            log.exception(
                "incremental pass for %d hinted employee(s) stopped by an unexpected error",
                len(wanted),
            )
            for hints in wanted.values():
                self._retry(hints, f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._finish(list(wanted))

    def _settle(self, hibob_id: str, hints: list[HintRecord], result: PassResult) -> None:
        """A hint is done once a pass succeeded for its employee, or no retry can help."""
        if result.outcome in SUCCESSFUL_OUTCOMES:
            self._done(hibob_id, hints)
            return
        error = result.error or (
            result.report.failures[0][1]
            if result.report and result.report.failures
            else result.outcome
        )
        if (
            result.outcome == "failed"
            and result.exception is not None
            and not isinstance(result.exception, ApiError)
        ):
            # E.g. unknown to Hibob and to us: Hibob answered, there is nothing to write. A new
            # hire's first read may lag, so the re-check still reads them once more.
            log.warning(
                "hint for employee %s not applied: %s",
                hibob_id,
                error,
                extra={"employee_id": hibob_id, "outcome": result.outcome},
            )
            self._done(hibob_id, hints)
            return
        if result.outcome == "errors" and self._is_quarantined(hibob_id):
            # An error about this person's data: quarantine retries it on its own schedule.
            self._done(hibob_id, hints, recheck=False)
            return
        if hints:
            forbidden = isinstance(result.exception, ApiAuthFailed) and (
                result.exception.status == 403 and result.exception.service == "Hibob"
            )
            limit = MAX_FORBIDDEN_ATTEMPTS if forbidden else MAX_HINT_ATTEMPTS
            parked = self._retry(hints, error, limit)
            log.warning(
                "hint for employee %s not applied, %s: %s",
                hibob_id,
                "parked until the next full pass" if parked else "will retry",
                error,
                extra={"employee_id": hibob_id, "outcome": result.outcome},
            )

    def _done(self, hibob_id: str, hints: list[HintRecord], recheck: bool = True) -> None:
        if not hints:
            return  # a re-check: nothing stored to finish, no further re-check
        self.store.mark_hints_done(hints, self._clock())
        if recheck:
            with self._lock:
                self._rechecks.setdefault(hibob_id, self._monotonic() + STALE_READ_SECONDS)

    def _retry(self, hints: list[HintRecord], error: str, limit: int = MAX_HINT_ATTEMPTS) -> bool:
        """Count a failed attempt and schedule the next; True when that was the last allowed
        one and the hints are parked until the next full pass instead."""
        if not hints:
            return False
        attempts = max(h.attempts for h in hints)
        if attempts + 1 >= limit:
            self.store.park_hints([h.id for h in hints], error[:500], self._clock())
            return True
        delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** min(attempts, 16))
        self.store.record_hint_attempts(
            [h.id for h in hints], error[:500], self._clock() + timedelta(seconds=delay)
        )
        return False

    def _is_quarantined(self, hibob_id: str) -> bool:
        entry = self.store.get_entry(hibob_id)
        return entry is not None and entry.is_quarantined(self._clock())

    def _finish(self, employees: list[str]) -> None:
        with self._lock:
            self._in_flight.difference_update(employees)
        try:
            self._on_change()
        finally:
            self._wake.set()  # hints that arrived for them meanwhile
