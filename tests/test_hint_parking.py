"""A hint whose employee Hibob refuses to show (the documented 403 on a single read) is retried a
bounded number of times, then parked until the next full pass, and `status` shows it (issue 15,
item 6). Both simulators through httpx.MockTransport; time is faked."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from reconciler.commands.status import collect_status
from reconciler.commands.terminal import print_status
from reconciler.service.hints import MAX_FORBIDDEN_ATTEMPTS, MAX_HINT_ATTEMPTS, RETRY_CAP_SECONDS
from reconciler.service.lifecycle import Service
from reconciler.service.webhooks import Hint
from tests.support import FakeClock, World

SECOND = dt.timedelta(seconds=1)


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


def hint(hibob_id: str) -> Hint:
    return Hint(hibob_id, "employee.updated", "2026-11-28T11:59:00", "upsert")


def later(world: World, monotonic: FakeClock, seconds: float) -> None:
    world.now += seconds * SECOND
    monotonic.now += seconds


def hide_from_single_reads(world: World, hibob_id: str) -> None:
    """Hibob's reference: a read by id of someone the permission group hides answers 403."""
    world.hibob.hidden_read_status = 403
    world.hibob.access_filter = lambda record: record["root.id"] != hibob_id


def targeted_passes(world: World) -> int:
    return sum(1 for p in world.store.list_passes(1000) if p.kind == "targeted")


def run_until_quiet(world: World, service: Service, monotonic: FakeClock, rounds: int) -> None:
    for _ in range(rounds):
        service.hints.process_hints()
        later(world, monotonic, RETRY_CAP_SECONDS)


def test_a_hint_refused_with_403_is_parked_after_a_bounded_number_of_tries(
    world, service, monotonic
) -> None:
    hibob_id = world.active_employees()[4]
    hide_from_single_reads(world, hibob_id)
    service.hints.on_hint(hint(hibob_id))

    run_until_quiet(world, service, monotonic, rounds=30)

    assert targeted_passes(world) == MAX_FORBIDDEN_ATTEMPTS  # not every 5 minutes forever
    assert world.store.list_pending_hints() == []
    [parked] = world.store.list_parked_hints()
    assert parked.hibob_id == hibob_id and "403" in parked.last_error


def test_status_shows_parked_hints_until_the_next_full_pass(world, service, monotonic) -> None:
    hibob_id = world.active_employees()[5]
    hide_from_single_reads(world, hibob_id)
    service.hints.on_hint(hint(hibob_id))
    run_until_quiet(world, service, monotonic, rounds=MAX_FORBIDDEN_ATTEMPTS + 1)

    status = collect_status(world.store, world.settings, world.now)
    out = io.StringIO()
    print_status(status, out)
    assert [h["employee_id"] for h in status["parked_hints"]] == [hibob_id]
    assert "parked hints" in out.getvalue() and hibob_id in out.getvalue()
    assert json.loads(json.dumps(status, default=str))["parked_hints"][0]["parked_at"]

    later(world, monotonic, 60)
    assert service.run_full().outcome in ("ok", "held")

    assert world.store.list_parked_hints() == []
    assert collect_status(world.store, world.settings, world.now)["parked_hints"] == []
    assert world.store.list_pending_hints() == []
    run_until_quiet(world, service, monotonic, rounds=3)
    assert targeted_passes(world) == MAX_FORBIDDEN_ATTEMPTS  # the full pass settled it


def test_a_full_pass_run_without_the_service_also_ends_the_parking_in_status(
    world, service, monotonic
) -> None:
    hibob_id = world.active_employees()[6]
    hide_from_single_reads(world, hibob_id)
    service.hints.on_hint(hint(hibob_id))
    run_until_quiet(world, service, monotonic, rounds=MAX_FORBIDDEN_ATTEMPTS + 1)
    assert world.store.list_parked_hints()

    later(world, monotonic, 60)
    assert world.sync("full").outcome in ("ok", "held")  # `sync --full`, no service

    assert collect_status(world.store, world.settings, world.now)["parked_hints"] == []


def test_a_hint_failing_for_any_other_reason_is_parked_too_but_much_later(
    world, service, monotonic
) -> None:
    hibob_id = world.active_employees()[7]
    world.hibob.faults.fail_next(10**6, 503)
    service.hints.on_hint(hint(hibob_id))

    run_until_quiet(world, service, monotonic, rounds=MAX_HINT_ATTEMPTS + 5)

    assert targeted_passes(world) == MAX_HINT_ATTEMPTS
    assert MAX_HINT_ATTEMPTS > 3 * MAX_FORBIDDEN_ATTEMPTS  # an outage gets hours of retries
    assert [h.hibob_id for h in world.store.list_parked_hints()] == [hibob_id]
