"""The scheduler's jobs and triggers: settings and arithmetic only, never a started scheduler."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time

from reconciler.errors import ConfigError
from reconciler.service.scheduler import (
    FULL_MISFIRE_GRACE_SECONDS,
    build_scheduler,
    full_resync_trigger,
    incremental_jitter,
    incremental_misfire_grace,
    incremental_trigger,
)
from reconciler.settings_sections import SyncSettings

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def noop() -> None:
    pass


def jobs(settings: SyncSettings, **kwargs):
    scheduler = build_scheduler(
        settings, run_incremental=noop, run_full=noop, poll_requests=noop, **kwargs
    )
    assert not scheduler.running
    return {job.id: job for job in scheduler.get_jobs()}


def test_every_job_is_single_instance_and_coalesced() -> None:
    found = jobs(SyncSettings())

    assert set(found) == {"incremental", "full", "admin-requests"}
    for job in found.values():
        assert job.max_instances == 1
        assert job.coalesce is True


def test_misfire_grace_is_one_interval_for_incremental_and_an_hour_for_the_full_resync() -> None:
    found = jobs(SyncSettings(interval_minutes=15))

    assert found["incremental"].misfire_grace_time == 900
    assert found["full"].misfire_grace_time == FULL_MISFIRE_GRACE_SECONDS
    assert incremental_misfire_grace(0.5) == 30
    assert incremental_misfire_grace(0.001) == 1


def test_start_up_pass_is_the_first_incremental_run() -> None:
    found = jobs(SyncSettings(), first_incremental_at=NOW)

    assert found["incremental"].next_run_time == NOW


@pytest.mark.parametrize(
    ("interval_minutes", "jitter_seconds"),
    [
        (15, 30.0),
        (5, 15.0),
        (0.5, 1.5),
        (1440, 30.0),
    ],
)
def test_jitter_is_five_percent_of_the_interval_capped_at_thirty_seconds(
    interval_minutes, jitter_seconds
) -> None:
    assert incremental_jitter(interval_minutes) == pytest.approx(jitter_seconds)


def test_incremental_passes_follow_the_interval_within_the_jitter() -> None:
    with freeze_time(NOW):
        trigger = incremental_trigger(15)
    first = trigger.get_next_fire_time(None, NOW)
    second = trigger.get_next_fire_time(first, first)

    assert NOW + dt.timedelta(minutes=15) <= first <= NOW + dt.timedelta(minutes=15, seconds=30)
    # APScheduler 3 adds the jitter to the previous (jittered) run: each gap is 15 min to 15:30.
    assert first + dt.timedelta(minutes=15) <= second
    assert second <= first + dt.timedelta(minutes=15, seconds=30)
    assert first.utcoffset() == dt.timedelta(0)


def test_fractional_interval_minutes_are_honoured() -> None:
    with freeze_time(NOW):
        trigger = incremental_trigger(0.5)
    first = trigger.get_next_fire_time(None, NOW)

    assert NOW + dt.timedelta(seconds=30) <= first <= NOW + dt.timedelta(seconds=31.5)


def test_full_resync_follows_the_cron_in_utc() -> None:
    trigger = full_resync_trigger("0 3 * * *")

    assert trigger.get_next_fire_time(None, NOW) == dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)
    weekly = full_resync_trigger("30 1 * * sun")
    assert weekly.get_next_fire_time(None, NOW) == dt.datetime(2026, 11, 29, 1, 30, tzinfo=dt.UTC)


def test_bad_cron_is_a_config_error_naming_the_setting() -> None:
    # load_settings already rejects it (tests/test_config.py); this is the scheduler's own guard.
    unchecked = SyncSettings.model_construct(full_resync_cron="every night")
    with pytest.raises(ConfigError, match="setting sync.full_resync_cron"):
        build_scheduler(unchecked, run_incremental=noop, run_full=noop, poll_requests=noop)
