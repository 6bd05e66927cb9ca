"""The service behind `reconciler run`: hint worker, forced resync, readiness, metrics and the
instance lock, against both simulators through httpx.MockTransport (no sockets but the receiver)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import pytest

from reconciler.errors import InstanceLocked
from reconciler.passes.context import PassContext
from reconciler.service.lifecycle import Service
from reconciler.service.runner import compute_readiness, readiness_bound
from reconciler.service.webhooks import create_app
from reconciler.store.database import Store
from tests.support import NOW, FakeClock, World

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path, size=40, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    return world


@pytest.fixture
def monotonic() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def service(world: World, monotonic: FakeClock) -> Service:
    return Service(world.services, clock=lambda: world.now, monotonic=monotonic)


def passes_of_kind(world: World, kind: str) -> list[dict]:
    return [p for p in world.store.list_passes(100) if p.kind == kind]


@pytest.mark.parametrize(
    ("interval_minutes", "bound_minutes"),
    [
        (15, 45),
        (60, 180),
        (0.5, 10.5),
        (5, 15),
    ],
)
def test_readiness_bound_is_three_intervals_and_at_least_interval_plus_ten_minutes(
    interval_minutes, bound_minutes
) -> None:
    assert readiness_bound(interval_minutes) == bound_minutes * MINUTE


def test_readiness_follows_the_age_of_the_last_successful_pass() -> None:
    assert compute_readiness(None, NOW, 15) == (False, "no successful pass yet")
    assert compute_readiness(NOW - 44 * MINUTE, NOW, 15)[0] is True
    is_ready, reason = compute_readiness(NOW - 46 * MINUTE, NOW, 15)
    assert not is_ready
    assert "2760 s ago, over the 2700 s bound" in reason


def test_service_is_ready_after_a_successful_pass_and_not_after_a_long_silence(
    world, service
) -> None:
    assert service.is_ready()[0]
    world.now = NOW + 46 * MINUTE
    assert not service.is_ready()[0]
    service.run_incremental()
    assert service.is_ready()[0]


def test_a_pass_feeds_the_metrics(world, service) -> None:
    world.learning.delete_user(world.store.get_entry(world.active_employees()[1]).learning_user_id)
    result = service.run_full()

    registry = service.metrics.registry
    assert (
        registry.get_sample_value(
            "reconciler_passes_total", {"kind": "full", "outcome": result.outcome}
        )
        == 1
    )
    assert (
        registry.get_sample_value("reconciler_last_success_timestamp_seconds")
        == world.now.timestamp()
    )
    assert registry.get_sample_value("reconciler_pending_hints") == 0
    assert registry.get_sample_value("reconciler_api_calls_total", {"service": "learning"}) > 0


def test_second_service_on_the_same_database_is_refused_and_stop_is_clean(world) -> None:
    first = Service(world.services)
    first.start()
    try:
        second = Service(
            PassContext(
                world.settings, world.services.hibob, world.services.learning, Store(world.db)
            )
        )
        with pytest.raises(InstanceLocked, match="already running"):
            second.start()
        response = httpx.get(f"{first.url}/healthz", trust_env=False)
        assert response.status_code == 200
    finally:
        assert first.stop() is True
    assert not Store(world.db).is_instance_running()


def start_with_a_slow_pass_in_flight(world: World, latency_seconds: float) -> Service:
    world.hibob.faults.latency_seconds = latency_seconds
    last = world.store.list_passes(1)[0].id
    service = Service(world.services)
    service.start()
    deadline = time.monotonic() + 5
    while world.store.list_passes(1)[0].id == last:
        assert time.monotonic() < deadline, "the start-up pass never began"
        time.sleep(0.01)
    return service


def test_stop_lets_the_pass_in_flight_finish(world: World) -> None:
    service = start_with_a_slow_pass_in_flight(world, 0.5)

    assert service.stop(timeout_seconds=5) is True

    last = Store(world.db).list_passes(1)[0]
    assert (last.kind, last.outcome) == ("incremental", "ok")


def test_stop_gives_up_on_a_long_pass_after_its_timeout(world: World) -> None:
    service = start_with_a_slow_pass_in_flight(world, 1.0)
    started = time.monotonic()

    assert service.stop(timeout_seconds=0.2) is False

    assert time.monotonic() - started < 0.9
    assert world.store.list_passes(1)[0].finished_at is None


def test_status_shows_the_next_scheduled_passes_of_the_running_service(world) -> None:
    from reconciler.commands.status import collect_status

    service = Service(world.services)
    service.start()
    try:
        status = collect_status(Store(world.db), world.settings, NOW)
        assert status["service_running"]
        assert status["next_pass_at"] and status["next_full_resync_at"]
        assert status["next_full_resync_at"].endswith("03:00:00+00:00")
    finally:
        service.stop()
    assert collect_status(Store(world.db), world.settings, NOW)["next_pass_at"] is None


def test_readyz_body_names_the_cause_of_the_last_failed_pass_even_after_a_restart(
    world, service, monotonic
) -> None:
    world.hibob.faults.fail_next(1, 401, None)
    service.run_incremental()
    world.now = NOW + 46 * MINUTE

    restarted = Service(world.build(), clock=lambda: world.now, monotonic=monotonic)
    app = create_app(
        world.settings.webhooks,
        on_hint=restarted.hints.on_hint,
        is_ready=restarted.is_ready,
        metrics=restarted.metrics,
    )
    status = {}
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/readyz"},
            lambda line, headers: status.setdefault("line", line),
        )
    )

    assert status["line"].startswith("503")
    assert body.decode().startswith("last pass failed: Hibob API answered 401")
    restarted.run_incremental()
    assert restarted.is_ready() == (True, "last successful pass 0 s ago")
