"""The hint worker: coalescing, targeted passes per employee beside a long pass, the stale-read
re-check, and hints kept and retried until a pass succeeds for their employee. Both simulators
through httpx.MockTransport; time is faked except where a test measures it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import NOW, World

from reconciler.hints import (
    MAX_TARGETED_PER_BATCH,
    STALE_READ_SECONDS,
)
from reconciler.service import Service
from reconciler.webhooks import Hint

SECOND = dt.timedelta(seconds=1)


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path, size=40, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    return world


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def service(world: World, monotonic: FakeMonotonic) -> Service:
    return Service(world.services, clock=lambda: world.now, monotonic=monotonic)


def hint(hibob_id: str, event_type: str = "employee.updated") -> Hint:
    return Hint(hibob_id, event_type, "2026-11-28T11:59:00", "upsert")


def passes_of_kind(world: World, kind: str) -> list[dict]:
    return [p for p in world.store.list_passes(100) if p["kind"] == kind]


def test_burst_of_hints_for_one_employee_runs_one_targeted_pass(world, service) -> None:
    hibob_id = world.active_employees()[2]
    world.hibob.update_employee(hibob_id, **{"work.title": "Chief Tea Officer"})
    for _ in range(5):
        service.hints.on_hint(hint(hibob_id))

    assert service.hints.process_hints() == 1

    assert world.user_of(hibob_id)["job"] == "Chief Tea Officer"
    assert world.store.count_pending_hints() == 0
    assert len(passes_of_kind(world, "targeted")) == 1


def test_hints_for_two_employees_run_one_targeted_pass_each(world, service) -> None:
    first, second = world.active_employees()[3:5]
    for hibob_id in (first, second, first):
        world.hibob.update_employee(hibob_id, **{"work.title": f"Title of {hibob_id}"})
        service.hints.on_hint(hint(hibob_id))

    assert service.hints.process_hints() == 2

    assert world.user_of(first)["job"] == f"Title of {first}"
    assert world.user_of(second)["job"] == f"Title of {second}"
    assert service.hints.process_hints() == 0


def test_hint_for_employee_gone_from_hibob_deactivates_them(world, service) -> None:
    hibob_id = world.active_employees()[5]
    world.hibob.delete_employee(hibob_id)
    service.hints.on_hint(hint(hibob_id, "employee.deleted"))

    service.hints.process_hints()

    assert world.user_of(hibob_id)["status"] == "deleted"


def test_hint_for_employee_unknown_to_both_sides_is_marked_done_and_not_retried(
        world, service, monotonic) -> None:
    service.hints.on_hint(hint("999999"))

    assert service.hints.process_hints() == 1

    assert world.store.count_pending_hints() == 0
    assert passes_of_kind(world, "targeted")[0]["outcome"] == "failed"
    assert "neither in Hibob nor known here" in passes_of_kind(world, "targeted")[0]["error"]
    assert service.hints.process_hints() == 0


def test_hinted_employee_is_read_again_once_after_the_stale_read_window(
        world, service, monotonic) -> None:
    hibob_id = world.active_employees()[6]
    service.hints.on_hint(hint(hibob_id))
    service.hints.process_hints()
    # Hibob answered the first read with the old value; the change shows up afterwards.
    world.hibob.update_employee(hibob_id, **{"work.title": "Late Title"})
    assert service.hints.process_hints() == 0

    monotonic.value += STALE_READ_SECONDS
    assert service.hints.process_hints() == 1

    assert world.user_of(hibob_id)["job"] == "Late Title"
    monotonic.value += STALE_READ_SECONDS
    assert service.hints.process_hints() == 0


def test_many_employees_in_one_batch_are_served_by_one_incremental_pass(world, service) -> None:
    employees = world.active_employees()[:MAX_TARGETED_PER_BATCH + 1]
    for hibob_id in employees:
        world.hibob.update_employee(hibob_id, **{"work.title": "Batch Title"})
        service.hints.on_hint(hint(hibob_id))
    before = len(world.store.list_passes(100))

    assert service.hints.process_hints() == 1

    assert len(world.store.list_passes(100)) == before + 1
    assert world.store.list_passes(1)[0]["kind"] == "incremental"
    assert {world.user_of(h)["job"] for h in employees} == {"Batch Title"}
    assert world.store.count_pending_hints() == 0


def test_hints_left_pending_by_a_previous_run_are_processed(world, monotonic) -> None:
    hibob_id = world.active_employees()[7]
    world.store.save_hint(hibob_id, "employee.updated", "upsert", None, NOW)
    world.hibob.update_employee(hibob_id, **{"work.title": "Restarted"})

    restarted = Service(world.build(), clock=lambda: world.now, monotonic=monotonic)
    restarted.hints.process_hints()

    assert world.user_of(hibob_id)["job"] == "Restarted"
    assert world.store.count_pending_hints() == 0


