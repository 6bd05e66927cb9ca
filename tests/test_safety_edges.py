"""Issue 19, safety at the edges: each case is a test named after it, written to fail first."""

from __future__ import annotations

import pytest

from reconciler.store.database import Store
from tests.support import TODAY, World
from tests.support.world import NOW


def _migrated_platform(world: World, tmp_path, **settings: str) -> None:
    """A platform where every employee already has a matching account (the usual migration
    from the relay this project replaces): populate it, then start from an empty store."""
    first = world.sync()
    assert first.outcome == "ok"
    world.store = Store(tmp_path / "migrated.db")
    world.services = world.build(**settings)


@pytest.mark.parametrize("platform", ["", "hibob"], ids=["external_ids_off", "external_ids_on"])
def test_case_0_an_adoption_that_needs_no_change_is_recorded(world: World, tmp_path, platform):
    _migrated_platform(world, tmp_path, RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM=platform)
    users_before = len(world.learning.users_by_mail())
    result = world.sync()
    assert result.outcome == "ok"
    assert {a.kind for a in result.plan.actions} == {"adopt"}
    assert len(world.learning.users_by_mail()) == users_before
    for hibob_id in world.active_employees():
        entry = world.store.get_entry(hibob_id)
        assert entry is not None and entry.learning_user_id, hibob_id
        assert entry.state is not None, hibob_id
    managed = [h for h in world.active_employees() if world.hibob.records[h].get("work.reportsTo")]
    assert any(world.store.get_entry(h).state.manager for h in managed)
    before = len(world.learning.requests)
    again = world.sync()
    assert again.plan.actions == ()
    assert world.learning.requests[before:] == []


# -- case 8: 360Learning users without `status` --------------------------------------------
def test_case_8_a_user_without_status_but_deleted_true_is_read_as_deleted(world: World) -> None:
    # The docs' only list-users example has "deleted": true and no "status".
    first = world.sync()
    assert first.outcome == "ok"
    hibob_id = world.active_employees()[2]
    user_id = world.store.get_entry(hibob_id).learning_user_id
    world.learning.delete_user(user_id)
    world.learning.edit_user(user_id, status=None, deleted=True)
    [user] = [u for u in world.services.learning.list_users() if u.learning_user_id == user_id]
    assert user.status == "deleted" and user.is_deleted


def test_case_8_a_user_with_an_unknown_status_is_reported_and_nothing_is_written(world) -> None:
    first = world.sync()
    assert first.outcome == "ok"
    hibob_id, leaver = world.active_employees()[2:4]
    for who in (hibob_id, leaver):
        world.learning.edit_user(world.store.get_entry(who).learning_user_id, status="suspended")
    world.hibob.terminate(leaver, on=TODAY)
    writes = len(world.learning_writes())
    result = world.sync("full")
    assert not [a for a in result.plan.actions if a.hibob_id in (hibob_id, leaver)]
    reasons = {p.hibob_id: p.reason for p in result.plan.problems}
    assert "suspended" in reasons[hibob_id] and "suspended" in reasons[leaver]
    assert len(world.learning_writes()) == writes


def test_case_8_an_unlinked_user_with_an_unknown_status_is_never_adopted() -> None:
    from reconciler.core.desired import Desired
    from reconciler.core.models import GroupRole, LearningUser
    from reconciler.core.plan import Limits, PlanInput, compute_plan

    mail = "p1@acme.example"
    wanted = Desired(
        "1",
        mail,
        "active",
        "active",
        attributes={"mail": mail},
        groups=frozenset({GroupRole("g0", "learner")}),
    )
    plan = compute_plan(
        PlanInput(
            desired={"1": wanted},
            snapshot={},
            now=NOW,
            users_by_mail={mail: [LearningUser("uX", "", {"mail": mail})]},
        ),
        Limits(max_deactivations=2, max_deactivation_ratio=1.0),
    )
    assert plan.actions == () and "status" in plan.problems[0].reason
