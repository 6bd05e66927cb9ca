"""Held settings changes (product §2.4, issue 17): the first pass under changed settings holds
every deactivation that exists only because of the change; creates and updates go through."""

from __future__ import annotations

import json

from tests.support import TODAY, World

ENGINEERING = json.dumps(
    [{"conditions": [{"field": "work.department", "op": "in", "values": ["Engineering"]}]}]
)


def _outside_engineering(world: World) -> list[str]:
    labels = world.hibob._labels["department"]
    return [
        h
        for h in world.active_employees()
        if labels.get(world.hibob.records[h]["work.department"]) != "Engineering"
        and world.user_of(h)
    ]


def test_a_scope_change_holds_whom_it_would_cut_off_with_the_reason_settings_changed(tmp_path):
    world = World(tmp_path)
    assert world.sync().outcome == "ok"
    leaver = world.active_employees()[0]
    world.hibob.terminate(leaver, on=TODAY)  # an ordinary leaver, deactivated either way
    inside = [h for h in world.active_employees()[1:] if h not in _outside_engineering(world)]
    retitled = inside[0]
    world.hibob.update_employee(retitled, **{"work.title": "Chief Tea Officer"})
    world.services = world.build(RECONCILER_SCOPE__GROUPS=ENGINEERING)  # a typo, or not
    outside = set(_outside_engineering(world)) - {leaver}

    result = world.sync()

    assert result.outcome == "held" and result.exit_code == 3
    assert {h.hibob_id for h in result.plan.held} == outside
    assert "settings changed" in (result.plan.held_reason or "")
    assert world.user_of(leaver)["status"] == "deleted"  # not because of the change
    assert world.user_of(retitled)["job"] == "Chief Tea Officer"  # updates go through
    assert all(world.user_of(h)["status"] != "deleted" for h in outside)
    rows = world.store.list_held()
    assert {r.hibob_id for r in rows} == outside
    assert all("settings changed" in r.reason for r in rows)

    again = world.sync()  # the settings are now the stored ones: still held until released
    assert again.outcome == "held" and {h.hibob_id for h in again.plan.held} == outside
    released = world.sync(released=frozenset(outside))
    assert released.outcome == "ok", released.error
    assert all(world.user_of(h)["status"] == "deleted" for h in outside)


def test_a_first_run_holds_nothing_for_the_settings(tmp_path) -> None:
    world = World(tmp_path, RECONCILER_SCOPE__GROUPS=ENGINEERING)
    result = world.sync()
    assert result.outcome == "ok" and result.plan.held == ()


def test_unchanged_settings_hold_nothing_and_a_dry_run_shows_the_hold_without_saving(tmp_path):
    world = World(tmp_path)
    assert world.sync().outcome == "ok"
    leaver = world.active_employees()[0]
    world.hibob.terminate(leaver, on=TODAY)
    assert [a.kind for a in world.sync().plan.actions] == ["deactivate"]
    world.services = world.build(RECONCILER_SCOPE__GROUPS=ENGINEERING)
    dry = world.sync(dry_run=True)
    assert dry.exit_code == 3 and dry.plan.held and world.store.list_held() == []
    assert world.sync().outcome == "held"  # the dry run did not store the new settings
