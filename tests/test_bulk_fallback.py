"""Bulk memberships fall back to one call each without writing anything twice, and never wait
forever (issue 15, item 5): a missing bulkOperations:read scope, 429
bulkOperationsConcurrencyLimitReached, 503 bulkAPIDisabled, a scope revoked while a job runs, a
job that never ends. Both simulators through httpx.MockTransport; 360Learning's time moves only
when the client sleeps."""

from __future__ import annotations

import io

from reconciler.clients.learning_groups import bulk_poll_deadline_seconds
from reconciler.commands.check import run_checks
from tests.support import World
from tests.test_apply_bulk import bulk_calls, one_by_one_calls, world_with_a_group_rule


def has_membership(world: World, hibob_id: str, group: str) -> bool:
    user = world.store.get_entry(hibob_id).learning_user_id
    return (group, "learner") in world.learning.roles_of(user)


def bulk_reads(world: World) -> int:
    return sum(
        1 for m, p, _ in world.learning.requests if m == "GET" and p.startswith("/api/v2/bulk/")
    )


def test_without_bulk_operations_read_no_job_is_started_and_nothing_is_added_twice(
    tmp_path,
) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    world.learning.scopes.discard("bulkOperations:read")

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert bulk_calls(world) == 0  # a job nobody can follow is never started
    assert one_by_one_calls(world) == len(members)
    assert all(has_membership(world, h, group) for h in members)
    assert world.sync().plan.actions == ()


def test_a_job_whose_scope_is_revoked_while_it_runs_is_verified_by_reading_not_redone(
    tmp_path,
) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    original = world.learning.handle

    def revoke_after_the_job_is_accepted(request):
        response = original(request)
        if request.url.path == "/api/v2/bulk/groups/memberships" and response.status_code == 202:
            world.learning.scopes.discard("bulkOperations:read")
        return response

    world.route_learning_through(revoke_after_the_job_is_accepted)

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert bulk_calls(world) == 1 and one_by_one_calls(world) == 0
    assert all(has_membership(world, h, group) for h in members)
    assert world.sync().plan.actions == ()


def test_the_bulk_concurrency_limit_falls_back_one_by_one_without_slowing_the_pacer(
    tmp_path,
) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    world.learning.occupy_bulk_slots(3)  # other integrations' jobs
    pacer = world.services.learning._writes  # noqa: SLF001
    rate_before = pacer.rate_per_second

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert bulk_calls(world) == 1  # refused once, not retried
    assert one_by_one_calls(world) == len(members)
    assert all(has_membership(world, h, group) for h in members)
    assert pacer.rate_per_second >= rate_before
    assert world.services.learning.stats.rate_limited == 0


def test_a_disabled_bulk_api_falls_back_one_by_one(tmp_path) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    world.learning.bulk_disabled = True

    result = world.sync()

    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert bulk_calls(world) == 1 and one_by_one_calls(world) == len(members)
    assert all(has_membership(world, h, group) for h in members)
    assert world.sync().plan.actions == ()


def test_polling_a_job_that_never_ends_stops_at_its_deadline(tmp_path) -> None:
    world, group, members = world_with_a_group_rule(tmp_path)
    world.learning.bulk_items_per_second = 1e-9  # queued, then running forever
    started = world.time.now

    result = world.sync()

    waited = world.time.now - started
    assert waited <= bulk_poll_deadline_seconds(len(members)) + 60
    assert bulk_calls(world) == 1 and one_by_one_calls(world) == 0  # never redone blindly
    assert result.outcome == "errors"  # the unconfirmed memberships are reported ...
    world.learning.finish_bulk_operations()
    second = world.sync()  # ... and planned again, once the job is over
    assert second.outcome == "ok"
    assert all(has_membership(world, h, group) for h in members)


def test_check_tests_both_bulk_scopes(tmp_path) -> None:
    world = World(tmp_path, size=20)
    out = io.StringIO()
    assert run_checks(world.settings, world.services, out) == 0
    assert "ok   360Learning scope groups:bulk is granted" in out.getvalue()
    assert "ok   360Learning scope bulkOperations:read is granted" in out.getvalue()

    world.learning.scopes.discard("bulkOperations:read")
    out = io.StringIO()
    code = run_checks(world.settings, world.build(), out)
    warning = [line for line in out.getvalue().splitlines() if "bulkOperations:read" in line]
    assert code == 0 and warning and warning[0].startswith("WARN")
    assert "one by one" in warning[0]
