"""Issue 20: what a pass costs, as call counts and rows read (never as timings).

Adoption finds the owner and the admins from the platform group's memberships; targeted
passes read their employee's rows only; hint writes go ahead of bulk writes in the pacer.
"""

from __future__ import annotations

import re

from reconciler.core.models import GroupRole
from tests.support import World

USER_ROLES = re.compile(r"^/api/v2/users/[^/]+/roles$")


def user_roles_reads(world: World) -> int:
    return sum(1 for m, path, _ in world.learning.requests if m == "GET" and USER_ROLES.match(path))


def existing_platform(world: World) -> list[str]:
    """The migration case: every employee already has a 360Learning account (not linked)."""
    people = world.active_employees()
    for hibob_id in people:
        world.learning.seed_user(world.hibob.records[hibob_id]["root.email"].strip().lower())
    return people


def test_adoption_reads_roles_only_for_the_platform_groups_admins(tmp_path) -> None:
    world = World(tmp_path, size=150, RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM="")
    world.learning.roles_page_size = 40  # the platform group's memberships take pages
    people = existing_platform(world)
    admin_id, other_id = people[3], people[4]
    root = world.learning.root_group_id
    admin = world.learning.users_by_mail()[
        world.hibob.records[admin_id]["root.email"].strip().lower()
    ]["_id"]
    world.learning.add_role(admin, root, "admin")
    world.learning.add_role(admin, world.learning.sales_group_id, "coach")
    owner_mail = world.learning.user(world.learning.owner_id)["mail"]
    namesake = world.hibob.add_employee(**{"root.surname": "Namesake", "root.email": owner_mail})
    before_owner = world.learning.user(world.learning.owner_id)

    result = world.sync()

    assert result.outcome == "ok", result.error
    assert user_roles_reads(world) <= 1  # the admin alone, not one per adoption candidate
    adopted = [a for a in result.plan.actions if a.kind == "adopt"]
    assert len(adopted) >= len(people) - 1
    assert any(p.hibob_id == namesake and "owner" in p.reason for p in result.plan.problems)
    assert world.learning.user(world.learning.owner_id) == before_owner
    assert world.store.get_entry(admin_id).learning_user_id == admin
    assert world.store.get_entry(other_id).learning_user_id is not None
    # The adopted admin keeps every role the reconciler did not create.
    kept = world.store.get_entry(admin_id).state.kept_groups
    assert GroupRole(root, "admin") in kept
    assert GroupRole(world.learning.sales_group_id, "coach") in kept
    world.hibob.update_employee(admin_id, **{"work.department": "A Brand New Department"})
    world.sync()
    world.sync("full")
    assert (root, "admin") in world.learning.roles_of(admin)
    assert (world.learning.sales_group_id, "coach") in world.learning.roles_of(admin)


def test_after_an_adoption_the_unchanged_pass_makes_no_360learning_call(tmp_path) -> None:
    world = World(tmp_path, size=80, RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM="")
    existing_platform(world)
    assert world.sync().outcome == "ok"
    calls = len(world.learning.requests)

    again = world.sync()

    assert again.outcome == "ok" and again.plan.actions == ()
    assert len(world.learning.requests) == calls


def test_a_few_candidates_are_still_read_one_by_one(tmp_path) -> None:
    """A hint or a handful of new people: a roles read each is cheaper than paging groups."""
    world = World(tmp_path, size=60)
    assert world.sync().outcome == "ok"
    hibob_id = world.hibob.add_employee(**{"root.email": "existing@acme.example"})
    world.learning.seed_user("existing@acme.example")
    world.learning.requests.clear()

    world.sync()

    assert world.store.get_entry(hibob_id).learning_user_id is not None
    assert user_roles_reads(world) == 1
    assert not any("/groups/" in path for _, path, _ in world.learning.requests)


def test_many_lookups_list_every_user_once_instead_of_50_mails_a_call(
    tmp_path, monkeypatch
) -> None:
    from reconciler.passes import reconcile

    monkeypatch.setattr(reconcile, "LIST_EVERYONE_ABOVE", 10)
    world = World(tmp_path, size=150, RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM="")
    people = existing_platform(world)
    world.learning.page_size = 1000

    result = world.sync()

    listings = [p for m, p, _ in world.learning.requests if m == "GET" and p == "/api/v2/users"]
    assert result.outcome == "ok"
    assert len(listings) == 2  # everyone, then the deleted ones
    assert sum(1 for a in result.plan.actions if a.kind == "adopt") >= len(people) - 1


class _NoWholeSnapshot:
    """Fails the test when a pass loads the whole snapshot or every known email."""

    def __init__(self, monkeypatch, world: World) -> None:
        store = world.store
        self.entries_read = 0
        original = store.load_entries
        known = store.load_known_emails

        def whole_snapshot():
            raise AssertionError("a targeted pass loaded the whole snapshot")

        def some_entries(*args, **kwargs):
            found = original(*args, **kwargs)
            self.entries_read += len(found)
            return found

        def some_emails(hibob_ids=None, *, emails=None):
            assert hibob_ids is not None or emails is not None, "every known email loaded"
            return known(hibob_ids, emails=emails)

        monkeypatch.setattr(store, "load_snapshot", whole_snapshot)
        monkeypatch.setattr(store, "load_entries", some_entries)
        monkeypatch.setattr(store, "load_known_emails", some_emails)


def test_a_targeted_pass_reads_its_employees_rows_not_the_whole_snapshot(
    tmp_path, monkeypatch
) -> None:
    world = World(tmp_path, size=120)
    assert world.sync().outcome == "ok"
    people = world.active_employees()
    changed, leaver = people[10], people[11]
    world.hibob.update_employee(changed, **{"work.title": "Changed by a hint"})
    world.hibob.terminate(leaver, on=world.now.date())
    newcomer = world.hibob.add_employee(**{"root.email": "newcomer@acme.example"})
    spy = _NoWholeSnapshot(monkeypatch, world)

    for hibob_id in (changed, leaver, newcomer):
        result = world.sync("targeted", employee=hibob_id)
        assert result.outcome == "ok", (result.error, result.plan)
        assert [a.hibob_id for a in result.plan.actions] == [hibob_id]

    assert world.user_of(changed)["job"] == "Changed by a hint"
    assert world.user_of(leaver)["status"] == "deleted"
    assert world.user_of(newcomer) is not None
    assert spy.entries_read < 30  # three employees' rows (and their managers'), not 120


def test_a_targeted_deactivation_meets_the_breaker_counted_over_everyone(
    tmp_path, monkeypatch
) -> None:
    world = World(
        tmp_path,
        size=120,
        RECONCILER_SYNC__MAX_DEACTIVATIONS="1000",
        RECONCILER_SYNC__MAX_DEACTIVATION_RATIO="0.03",
    )
    assert world.sync().outcome == "ok"
    managed = world.store.count_managed_both()
    snapshot = world.store.load_snapshot()
    assert managed[0] == sum(1 for e in snapshot.values() if e.is_linked and e.is_active)
    assert managed[1] == sum(
        len(e.state.groups - e.state.kept_groups)
        for e in snapshot.values()
        if e.is_linked and e.is_active and e.state is not None
    )
    leavers = world.active_employees()[:5]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=world.now.date())
    _NoWholeSnapshot(monkeypatch, world)

    outcomes = [world.sync("targeted", employee=h) for h in leavers]

    # Up to 3 % of ~100 managed users go (the 4th is held); the few rows read would hold all.
    assert outcomes[0].outcome == "ok" and outcomes[0].counts.get("deactivate") == 1
    assert outcomes[-1].outcome == "held"


def test_hint_writes_go_ahead_of_bulk_writes_waiting_in_the_pacer() -> None:
    import threading
    import time

    from reconciler.clients.http import AdaptiveLimiter, priority_lane

    wake = threading.Event()
    limiter = AdaptiveLimiter(0.5, sleep=lambda seconds: wake.wait(seconds))
    limiter.acquire()  # the last bulk write sent: the next slot is 2 s away
    order: list[str] = []

    def bulk(name: str) -> None:
        limiter.acquire()
        order.append(name)

    workers = [threading.Thread(target=bulk, args=(f"bulk{n}",)) for n in range(3)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 10
    while limiter.waiting() != (0, 3):
        assert time.monotonic() < deadline, limiter.waiting()
        time.sleep(0.001)

    with priority_lane():
        limiter.acquire()  # waits for the slot, then takes it ahead of the three
    order.append("hint")
    limiter.rate_per_second = 10_000.0  # let the bulk writes drain
    wake.set()
    for worker in workers:
        worker.join(timeout=10)

    assert order[0] == "hint" and sorted(order[1:]) == ["bulk0", "bulk1", "bulk2"]
