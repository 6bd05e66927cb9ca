"""Issue 19, safety at the edges: each case is a test named after it, written to fail first."""

from __future__ import annotations

import pytest

from reconciler.store.database import Store
from tests.support import World


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
