"""The breaks the crash loop and the fault matrix found, each reproduced in-process in a few lines
so the fix was made test-first. All are fixed; they stay as regression tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from faults.conftest import FaultWorld
from faults.oracle import find_differences

pytestmark = pytest.mark.faults


def _synced(world: FaultWorld) -> FaultWorld:
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    return world


def test_a_kill_right_after_a_create_still_ends_with_the_external_id_written(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    hibob_id = world.active_employees()[3]
    mail = world.hibob.records[hibob_id]["root.email"].strip().lower()
    # What a SIGKILL leaves after the create's answer and save_link, before anything else.
    user_id = world.learning.seed_user(mail, "invited")
    world.store.save_link(hibob_id, user_id, mail, world.now)

    assert world.sync().outcome == "ok"

    assert find_differences(world.hibob, world.learning, world.db) == []


def test_a_manager_link_skipped_while_the_managers_create_failed_is_made_once_it_succeeds(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    boss = world.hibob.ceo_id
    boss_mail = world.hibob.records[boss]["root.email"].strip().lower()

    def refuse_the_boss(request: httpx.Request) -> httpx.Response:
        if (
            request.method == "POST"
            and request.url.path == "/api/v2/users"
            and boss_mail.encode() in request.content
        ):
            return httpx.Response(503, json={"error": "simulated failure"})
        return world.learning.handle(request)

    world.services.learning = type(world.services.learning)(
        world.settings.learning,
        transport=httpx.MockTransport(refuse_the_boss),
        sleep=world.time.sleep,
        clock=world.time.clock,
        wall_clock=world.time.clock,
    )
    assert world.sync().outcome == "errors"
    world.build()

    assert world.sync().outcome == "ok"

    assert find_differences(world.hibob, world.learning, world.db) == []


def test_rehiring_a_manager_gives_the_subordinates_their_manager_link_back(
    fault_world: FaultWorld,
) -> None:
    world = _synced(fault_world)
    boss = world.active_employees()[4]
    for subordinate in world.active_employees()[10:13]:
        world.hibob.update_employee(subordinate, manager_id=boss)
    assert world.sync().outcome == "ok"
    world.hibob.terminate(boss, on=world.hibob.today - dt.timedelta(days=1))
    assert world.sync().outcome == "ok"
    world.hibob.rehire(boss)

    assert world.sync().outcome == "ok"

    assert find_differences(world.hibob, world.learning, world.db) == []


def test_a_targeted_pass_decides_a_shared_email_as_the_incremental_pass_does(
    tmp_path: Path,
) -> None:
    world = _synced(FaultWorld(tmp_path, size=60))
    first, second = world.company.bad_records["duplicate_email"][:2]
    world.hibob.terminate(second, on=world.hibob.today - dt.timedelta(days=1))
    planned = {a.hibob_id: a.kind for a in world.sync(dry_run=True).plan.actions}

    targeted = world.sync("targeted", employee=first)

    assert {a.hibob_id: a.kind for a in targeted.plan.actions} == {
        h: k for h, k in planned.items() if h == first
    }


def test_an_adoption_whose_restore_failed_restores_the_account_on_the_next_pass(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    hibob_id = world.active_employees()[6]
    mail = world.hibob.records[hibob_id]["root.email"].strip().lower()
    user_id = world.learning.seed_user(mail, "deleted")
    world.learning.faults.fail_next(10_000, 503, method="POST", path_prefix="/api/v2/users")
    assert world.sync().outcome == "errors"
    world.learning.faults.clear()

    assert world.sync().outcome == "ok"

    assert world.learning.user(user_id)["status"] == "active"


def test_a_failed_relink_of_a_rehired_managers_subordinates_is_retried_by_the_next_pass(
    fault_world: FaultWorld,
) -> None:
    world = _synced(fault_world)
    boss = world.active_employees()[4]
    for subordinate in world.active_employees()[10:13]:
        world.hibob.update_employee(subordinate, manager_id=boss)
    assert world.sync().outcome == "ok"
    world.hibob.terminate(boss, on=world.hibob.today - dt.timedelta(days=1))
    assert world.sync().outcome == "ok"
    world.hibob.rehire(boss)
    # Link calls (POST /users/{id}/managers/{id}) fail for this pass only.
    world.learning.faults.fail_next(10_000, 503, method="POST", path_prefix="/api/v2/users/")
    world.sync()
    world.learning.faults.clear()
    assert find_differences(world.hibob, world.learning, world.db) != []

    assert world.sync().outcome == "ok"

    assert find_differences(world.hibob, world.learning, world.db) == []
