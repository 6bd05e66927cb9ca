"""Scheduler: the APScheduler 3 jobs and triggers of `reconciler run`, and nothing else.

`build_scheduler` is called by the service, which passes in the callables to run; the jobs
never import a client or the store. Every job is UTC, single-instance and coalesced; what a job
does (locking, passes, hints) belongs to `reconciler.service.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.errors import ConfigError
from reconciler.settings_sections import SyncSettings

POLL_SECONDS = 0.5
"""How often the service looks for `reconciler resync` requests."""
MAX_JITTER_SECONDS = 30.0
FULL_MISFIRE_GRACE_SECONDS = 3600
"""A nightly resync missed by less than this (host asleep, service restarted) still runs."""


def build_scheduler(
    settings: SyncSettings,
    *,
    run_incremental: Callable[[], object],
    run_full: Callable[[], object],
    poll_requests: Callable[[], object],
    first_incremental_at: datetime | None = None,
) -> BackgroundScheduler:
    """A scheduler (not started) with the incremental, full-resync and request-poll jobs.

    `first_incremental_at` makes the incremental job also fire then (the start-up pass).
    """
    scheduler = BackgroundScheduler(timezone=UTC)
    interval = incremental_trigger(settings.interval_minutes)
    extra = {} if first_incremental_at is None else {"next_run_time": first_incremental_at}
    scheduler.add_job(
        run_incremental,
        interval,
        id="incremental",
        name="incremental pass",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=incremental_misfire_grace(settings.interval_minutes),
        **extra,
    )
    scheduler.add_job(
        run_full,
        full_resync_trigger(settings.full_resync_cron),
        id="full",
        name="full resync",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=FULL_MISFIRE_GRACE_SECONDS,
    )
    scheduler.add_job(
        poll_requests,
        IntervalTrigger(seconds=POLL_SECONDS, timezone=UTC),
        id="admin-requests",
        name="admin requests",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    return scheduler


def add_watchdog_job(
    scheduler: BackgroundScheduler, interval_seconds: float | None, ping: Callable[[], object]
) -> None:
    """Ping systemd's watchdog from the scheduler itself: if its threads wedge, the pings stop
    and systemd restarts the service. No job when the watchdog is off (None)."""
    if interval_seconds is None:
        return
    scheduler.add_job(
        ping,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id="watchdog",
        name="systemd watchdog",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )


def incremental_trigger(interval_minutes: float) -> IntervalTrigger:
    return IntervalTrigger(
        seconds=interval_minutes * 60, timezone=UTC, jitter=incremental_jitter(interval_minutes)
    )


def incremental_jitter(interval_minutes: float) -> float:
    """5% of the interval, at most 30 s: spreads several installs' calls, keeps the rhythm."""
    return min(MAX_JITTER_SECONDS, interval_minutes * 60 * 0.05)


def incremental_misfire_grace(interval_minutes: float) -> int:
    """A pass late by less than one interval still runs; later ones are left to the next."""
    return max(1, int(timedelta(minutes=interval_minutes).total_seconds()))


def full_resync_trigger(cron: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(cron, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(f"setting sync.full_resync_cron: {exc}") from None
