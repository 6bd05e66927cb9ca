"""Issue 20: what a pass costs, as call counts and rows read (never as timings).

Adoption finds the owner and the admins from the platform group's memberships; targeted
passes read their employee's rows only; hint writes go ahead of bulk writes in the pacer.
"""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from reconciler.clients.hibob import HibobClient
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
    from reconciler.passes import reconcile_learning

    monkeypatch.setattr(reconcile_learning, "LIST_EVERYONE_ABOVE", 10)
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


def test_the_snapshot_is_read_while_the_search_is_in_flight(tmp_path, monkeypatch) -> None:
    """Hibob takes seconds to answer a large company's search: the store's rows are read in
    that wait, not before the request goes out (issue 20: a lazy snapshot)."""
    world = World(tmp_path)
    assert world.sync().outcome == "ok"
    search_sent, snapshot_read = threading.Event(), threading.Event()
    load_snapshot = world.store.load_snapshot

    def loading_snapshot():
        # Read only once the search is out: a pass reading the snapshot first waits here
        # in vain.
        assert search_sent.wait(timeout=5), "the snapshot was read before the search went out"
        try:
            return load_snapshot()
        finally:
            snapshot_read.set()

    def searching(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/people/search"):
            search_sent.set()
            # ... and answered only once the snapshot has been read in the meantime.
            assert snapshot_read.wait(timeout=5), "the snapshot was not read during the search"
        return world.hibob.handle(request)

    monkeypatch.setattr(world.store, "load_snapshot", loading_snapshot)
    world.hibob.update_employee(world.active_employees()[3], **{"work.title": "Read late"})
    world.services.hibob = HibobClient(
        world.settings.hibob, transport=httpx.MockTransport(searching), sleep=world.time.sleep
    )
    result = world.sync()

    assert result.outcome == "ok", result.error
    assert [a.hibob_id for a in result.plan.actions] == [world.active_employees()[3]]


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

    from reconciler.clients.pacer import AdaptiveLimiter, priority_lane

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


# -- skipping unchanged employees never changes a decision (core.fingerprint) ----------------
SKIP_STEPS = (
    "title",
    "email",
    "terminate_today",
    "terminate_tomorrow",
    "rehire",
    "report_to_leaver",
    "new_hire",
    "shared_email",
    "manager_leaves",
    "missing_once",
    "settings",
    "midnight",
    "nothing",
)


def _plans_with_and_without_keys(world: World, monkeypatch):
    import datetime as dt

    from reconciler.passes.reconcile import read_and_plan

    skipping = read_and_plan(world.services, "incremental", now=world.now)
    with monkeypatch.context() as patched:
        patched.setattr(world.store, "load_source_keys", lambda: {})
        computed = read_and_plan(world.services, "incremental", now=world.now)
    assert isinstance(world.now, dt.datetime)
    return skipping, computed


@pytest.mark.slow  # a long property (generated change sequences): the slow tier, and CI
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(
    seed=st.integers(0, 10_000),
    steps=st.lists(
        st.tuples(st.sampled_from(SKIP_STEPS), st.integers(0, 10_000)), min_size=1, max_size=8
    ),
)
@example(seed=3, steps=[("midnight", 0), ("terminate_tomorrow", 1), ("midnight", 0)])
@example(seed=4, steps=[("new_hire", 3), ("nothing", 0), ("midnight", 0), ("midnight", 0)])
@example(
    seed=6,
    steps=[("terminate_today", 5), ("report_to_leaver", 9), ("nothing", 0), ("rehire", 0)],
)
@example(seed=5, steps=[("settings", 0), ("title", 2), ("settings", 1), ("shared_email", 3)])
def test_skipping_unchanged_employees_never_changes_the_plan(
    tmp_path_factory, monkeypatch, seed, steps
) -> None:
    import datetime as dt

    world = World(
        tmp_path_factory.mktemp("skip"),
        size=40,
        seed=seed,
        RECONCILER_MAPPING__ORGANIZATION="work.department",
        RECONCILER_SYNC__PREHIRE="at_start",
        RECONCILER_SYNC__PREHIRE_DAYS_BEFORE="2",
    )
    world.hibob.search_limit_per_minute = world.hibob.read_limit_per_minute = 10**9
    assert world.sync().outcome in ("ok", "errors")
    world.sync()  # plans nothing for most: their keys are stored
    assert len(world.store.load_source_keys()) > 20
    left: list[str] = []
    for number, (step, pick) in enumerate(steps):
        people = sorted(world.hibob.records)
        hibob_id = people[pick % len(people)]
        world.hibob.search_omits = set()
        if step == "title":
            world.hibob.update_employee(hibob_id, **{"work.title": f"Role {number}"})
        elif step == "email":
            world.hibob.update_employee(hibob_id, **{"root.email": f"e{number}.{hibob_id}@x.io"})
        elif step == "terminate_today":
            world.hibob.terminate(hibob_id, on=world.now.date())
            left.append(hibob_id)
        elif step == "terminate_tomorrow":
            world.hibob.terminate(hibob_id, on=world.now.date() + dt.timedelta(days=1))
        elif step == "rehire":
            world.hibob.rehire(left.pop() if left else hibob_id)
        elif step == "report_to_leaver" and left:  # a manager link that must wait
            world.hibob.update_employee(hibob_id, **{"work.reportsTo": left[-1]})
        elif step == "new_hire":
            start = world.now.date() + dt.timedelta(days=pick % 5)
            world.hibob.add_employee(**{"root.email": f"new{number}@x.io", "work.startDate": start})
        elif step == "shared_email":  # a newcomer with someone's address: both ambiguous
            mail = world.hibob.records[hibob_id].get("root.email") or f"s{number}@x.io"
            world.hibob.add_employee(**{"root.email": mail})
        elif step == "manager_leaves":
            bosses = sorted(
                {r.get("work.reportsTo") for r in world.hibob.records.values()} - {None}
            )
            if bosses:
                left.append(str(bosses[pick % len(bosses)]))
                world.hibob.terminate(left[-1], on=world.now.date())
        elif step == "missing_once":
            world.hibob.search_omits = {hibob_id}
        elif step == "settings":
            organization = ("work.siteId", "work.department")[pick % 2]
            world.settings = world.settings.model_copy(
                update={
                    "mapping": world.settings.mapping.model_copy(
                        update={"organization": organization}
                    )
                }
            )
            world.services.settings = world.settings
        elif step == "midnight":  # the date moves on while Hibob's records stay the same
            world.now = world.now.replace(hour=23, minute=50) + dt.timedelta(minutes=20)
        skipping, computed = _plans_with_and_without_keys(world, monkeypatch)
        assert skipping == computed, step
        world.sync()


def test_settings_become_core_limits_once_per_pass(tmp_path, monkeypatch) -> None:
    from reconciler.passes import context

    world = World(tmp_path, size=30)
    world.sync()
    world.hibob.update_employee(world.active_employees()[0], **{"work.title": "Changed"})
    made = []
    real = context.Limits
    monkeypatch.setattr(context, "Limits", lambda **k: made.append(k) or real(**k))

    result = world.sync()

    assert result.outcome == "ok", result.error
    assert len(made) <= 1  # 4 when each step made its own


def test_adoptions_that_send_nothing_are_recorded_in_one_transaction(tmp_path) -> None:
    from contextlib import contextmanager

    from reconciler.passes.reconcile import read_and_plan

    world = World(tmp_path, size=60, RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM="")
    # Every account already as the plan would write it (the migration case): nothing to send.
    for action in read_and_plan(world.services, "incremental", now=world.now).actions:
        attributes = {k: v for k, v in action.changes.items() if v is not None}
        user_id = world.learning.seed_user(attributes.pop("mail"), **attributes)
        for group in action.state.groups if len(action.state.groups) > 1 else ():
            world.learning.add_role(user_id, group.group_id, group.role)
    people = world.active_employees()
    adopting = []  # per transaction that journals an adoption: how many statements it sent
    real = type(world.store).transaction

    class Spy:
        def __init__(self, conn, sent):
            self.conn, self.sent = conn, sent

        def execute(self, sql, *args):
            self.sent.append(sql)
            return self.conn.execute(sql, *args)

        def executemany(self, sql, *args):
            self.sent.append(sql)
            return self.conn.executemany(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    @contextmanager
    def counted(store):
        with real(store) as conn:
            sent: list[str] = []
            yield Spy(conn, sent)
            if any("'adopt'" in sql for sql in sent):
                adopting.append(len(sent))

    type(world.store).transaction = counted
    try:
        result = world.sync()
    finally:
        type(world.store).transaction = real

    adopted = [a for a in result.plan.actions if a.kind == "adopt"]
    assert result.outcome == "ok", result.error
    assert len(adopted) >= len(people) - 1
    assert len(adopting) == 1  # one per adoption before
    for action in adopted:  # each adoption is a link and a journal row, as before
        entry = world.store.get_entry(action.hibob_id)
        assert entry.learning_user_id == action.learning_user_id and entry.state is not None
    journal = world.store.conn.execute(
        "SELECT COUNT(*) FROM journal WHERE action = 'adopt' AND outcome = 'ok'"
    ).fetchone()[0]
    assert journal == len(adopted)
    assert world.sync().plan.actions == ()


def test_a_member_whose_link_failed_is_not_skipped_on_a_key_stored_while_her_manager_was_away(
    tmp_path,
) -> None:
    """A key stored while her manager was leaving (no link possible: she planned nothing)
    must not outlive the pass that plans her link once he is back: if that link fails or the
    pass dies, the next incremental pass still links her."""
    world = World(tmp_path, size=30)
    world.hibob.search_limit_per_minute = world.hibob.read_limit_per_minute = 10**9
    assert world.sync().outcome == "ok"
    people = world.active_employees()
    records = world.hibob.records
    manager, member = next(
        (str(records[h]["work.reportsTo"]), h)
        for h in people
        if records[h].get("work.reportsTo") in people and records[h]["work.reportsTo"] != h
    )
    boss = world.store.get_entry(manager).learning_user_id
    today = world.now.date()
    world.hibob.terminate(member, on=today)
    assert world.sync().outcome == "ok"
    # He is leaving (his deactivation keeps failing) while she comes back: no link for her.
    world.hibob.terminate(manager, on=today)
    world.hibob.rehire(member)
    world.learning.faults.fail_next(
        10**6, 503, method="DELETE", path_prefix=f"/api/v2/users/{boss}"
    )
    world.sync()
    world.sync()  # she plans nothing: her key is stored
    assert member in world.store.load_source_keys()
    world.learning.faults.clear()
    # He stays after all; her link is planned, and refused this once.
    world.hibob.rehire(manager)
    user = world.store.get_entry(member).learning_user_id
    world.learning.faults.fail_next(10**6, 503, path_prefix=f"/api/v2/users/{user}/managers")
    world.sync()
    world.learning.faults.clear()

    world.sync()

    assert world.learning.managers_of(user) == {boss}
