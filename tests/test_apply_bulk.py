"""Group memberships beyond the create's own go through 360Learning's bulk API when a pass has
many of them (scope groups:bulk), and one by one otherwise (issue 10, target 3)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx

from tests.support import World


def world_with_a_group_rule(tmp_path: Path, **settings: str) -> tuple[World, str, list[str]]:
    probe = World(tmp_path / "probe", size=200)
    label = Counter(r["work.department"] for r in probe.hibob.records.values()).most_common(1)
    department = probe.hibob._labels["department"][label[0][0]]  # noqa: SLF001 - its label
    rules = [
        {"field": "work.department", "label": department, "role": "learner", "group_id": "GROUP"}
    ]
    world = World(tmp_path / "world", size=200, **settings)
    rules[0]["group_id"] = world.learning.sales_group_id
    world.services = world.build(RECONCILER_MAPPING__GROUPS=json.dumps(rules))
    members = [
        h
        for h in world.active_employees()
        if world.hibob._labels["department"].get(  # noqa: SLF001
            world.hibob.records[h]["work.department"]
        )
        == department
    ]
    return world, world.learning.sales_group_id, members


def bulk_calls(world: World) -> int:
    return sum(
        1
        for method, path, _ in world.learning.requests
        if method == "POST" and path == "/api/v2/bulk/groups/memberships"
    )


def one_by_one_calls(world: World) -> int:
    return sum(
        1
        for method, path, _ in world.learning.requests
        if method == "POST" and "/api/v2/groups/" in path
    )


def test_a_first_sync_adds_many_memberships_in_one_bulk_job(tmp_path) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    assert len(members) >= 50

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert bulk_calls(world) == 1 and one_by_one_calls(world) == 0
    for hibob_id in members:
        user = world.store.get_entry(hibob_id).learning_user_id
        assert (group, "learner") in world.learning.roles_of(user)
    assert world.sync().plan.actions == ()


def test_without_the_bulk_scope_memberships_are_added_one_by_one(tmp_path) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    world.learning.scopes.discard("groups:bulk")

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert one_by_one_calls(world) == len(members)
    assert all(
        (group, "learner") in world.learning.roles_of(world.store.get_entry(h).learning_user_id)
        for h in members
    )


def test_a_membership_the_bulk_job_refused_is_planned_again(tmp_path) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    original = world.learning.handle
    refused = {"on": True}

    def fail_the_bulk_job(request):
        if request.url.path == "/api/v2/bulk/groups/memberships" and refused["on"]:
            return httpx.Response(503, json={"error": {"code": "internal", "message": "down"}})
        return original(request)

    world.route_learning_through(fail_the_bulk_job)
    first = world.sync()
    assert first.outcome == "errors"
    refused["on"] = False

    second = world.sync()

    assert {a.hibob_id for a in second.plan.actions} == set(members)
    assert all(
        (group, "learner") in world.learning.roles_of(world.store.get_entry(h).learning_user_id)
        for h in members
    )
    assert world.sync().plan.actions == ()
