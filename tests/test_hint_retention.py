"""Replayed deliveries never pile up (issue 15, item 8; product §3 "Hostile input"): one open
hint row per employee, coalesced; a delivery that arrives while its employee's pass runs is
served again, never lost; done hints are pruned after `webhooks.retention_days`."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from reconciler.service.lifecycle import Service
from reconciler.service.webhooks import Hint
from tests.support import FakeClock, World

DAY = dt.timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path, size=20, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    assert world.sync().outcome == "ok"
    return world


@pytest.fixture
def service(world: World) -> Service:
    return Service(world.services, clock=lambda: world.now, monotonic=FakeClock(1000.0))


def hint_rows(world: World) -> int:
    with sqlite3.connect(world.settings.store.path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM hints").fetchone()[0])


def test_a_replayed_delivery_is_coalesced_into_one_pending_row(world, service) -> None:
    hibob_id = world.active_employees()[3]
    for _ in range(500):
        service.hints.on_hint(Hint(hibob_id, "employee.updated", "2026-11-28T11:59:00", "upsert"))

    assert hint_rows(world) == 1
    [pending] = world.store.list_pending_hints()
    assert pending.hibob_id == hibob_id and pending.deliveries == 500
    assert service.hints.process_hints() == 1
    assert world.store.count_pending_hints() == 0


def test_a_replay_of_an_event_already_served_is_counted_not_stored_again(world, service) -> None:
    hibob_id = world.active_employees()[8]
    delivery = Hint(hibob_id, "employee.updated", "2026-11-28T11:59:00", "upsert")
    service.hints.on_hint(delivery)
    assert service.hints.process_hints() == 1
    passes = len(world.store.list_passes(100))

    for _ in range(100):
        service.hints.on_hint(delivery)
    service.hints.on_hint(Hint(hibob_id, "employee.updated", "2026-11-28T12:05:00", "upsert"))

    assert hint_rows(world) == 2  # the served event, and the one new event
    assert world.store.count_pending_hints() == 1
    service.hints._last_started.clear()  # noqa: SLF001
    assert service.hints.process_hints() == 1
    assert len(world.store.list_passes(100)) == passes + 1


def test_a_delivery_during_its_employees_pass_is_served_again_not_lost(world, service) -> None:
    hibob_id = world.active_employees()[4]
    service.hints.on_hint(Hint(hibob_id, "employee.updated", None, "upsert"))
    original = service.hints._run_targeted  # noqa: SLF001

    def change_arrives_while_the_pass_runs(employee: str):
        result = original(employee)  # read Hibob before the change below
        world.hibob.update_employee(hibob_id, **{"work.title": "Changed Mid-Pass"})
        service.hints.on_hint(Hint(hibob_id, "employee.updated", None, "upsert"))
        return result

    service.hints._run_targeted = change_arrives_while_the_pass_runs  # noqa: SLF001
    assert service.hints.process_hints() == 1
    service.hints._run_targeted = original  # noqa: SLF001

    assert world.store.count_pending_hints() == 1  # the second delivery is still to serve
    service.hints._last_started.clear()  # noqa: SLF001  (past the coalescing spacing)
    assert service.hints.process_hints() == 1
    assert world.user_of(hibob_id)["job"] == "Changed Mid-Pass"
    assert world.store.count_pending_hints() == 0


def test_done_hints_are_pruned_after_the_retention(world, service) -> None:
    first, second = world.active_employees()[5:7]
    service.hints.on_hint(Hint(first, "employee.updated", None, "upsert"))
    assert service.hints.process_hints() == 1
    world.now += 6 * DAY
    service.hints.on_hint(Hint(second, "employee.updated", None, "upsert"))
    assert service.hints.process_hints() == 1
    assert hint_rows(world) == 2

    world.now += 1 * DAY + dt.timedelta(minutes=1)
    assert world.store.prune_done_hints(world.now - 7 * DAY) == 1
    assert hint_rows(world) == 1
    world.now += 7 * DAY
    service.hints.process_hints()  # the worker prunes as it goes
    assert hint_rows(world) == 0


def test_retention_days_is_a_setting_and_must_be_positive(tmp_path) -> None:
    world = World(tmp_path, size=5, RECONCILER_WEBHOOKS__RETENTION_DAYS="3")
    assert world.settings.webhooks.retention_days == 3
    with pytest.raises(Exception, match="webhooks.retention_days"):
        World(tmp_path / "x", size=5, RECONCILER_WEBHOOKS__RETENTION_DAYS="0")
