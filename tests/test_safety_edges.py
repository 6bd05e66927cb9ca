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
    [user] = [
        u
        for u in world.services.learning.list_users_with_deleted()
        if u.learning_user_id == user_id
    ]
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


# -- case 5: the breaker's false alarms ------------------------------------------------------
BREAKER_DEFAULTS = {
    "RECONCILER_SYNC__MAX_DEACTIVATIONS": "25",
    "RECONCILER_SYNC__MAX_DEACTIVATION_RATIO": "0.05",
}


def test_case_5_two_leavers_within_an_hour_never_hold_a_28_person_company(tmp_path) -> None:
    import datetime as dt

    world = World(tmp_path, size=28, **BREAKER_DEFAULTS)
    assert world.sync().outcome == "ok"
    first, second = world.active_employees()[3:5]
    world.hibob.terminate(first, on=TODAY)
    assert [a.kind for a in world.sync().plan.actions] == ["deactivate"]
    world.now += dt.timedelta(minutes=20)
    world.hibob.terminate(second, on=TODAY)
    result = world.sync()
    assert result.outcome == "ok", result.error
    assert result.plan.held == () and [a.kind for a in result.plan.actions] == ["deactivate"]


def test_case_5_the_count_limit_applies_below_the_share_minimum(tmp_path) -> None:
    world = World(tmp_path, size=28, RECONCILER_SYNC__MAX_DEACTIVATIONS="1")
    assert world.sync().outcome == "ok"
    for hibob_id in world.active_employees()[3:5]:
        world.hibob.terminate(hibob_id, on=TODAY)
    result = world.sync()
    assert result.outcome == "held" and len(result.plan.held) == 2


def test_case_5_released_deactivations_leave_the_breaker_window(tmp_path) -> None:
    import datetime as dt

    world = World(tmp_path, size=120, RECONCILER_SYNC__MAX_DEACTIVATIONS="25")
    assert world.sync().outcome == "ok"
    leavers = world.active_employees()[:30]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=TODAY)
    held = world.sync()
    assert held.outcome == "held" and len(held.plan.held) == 30
    released = world.sync(released=frozenset(leavers))
    assert released.outcome == "ok" and released.counts.get("deactivate") == 30
    world.now += dt.timedelta(minutes=10)
    ordinary = world.active_employees()[40]
    world.hibob.terminate(ordinary, on=TODAY)
    result = world.sync()
    assert result.outcome == "ok", result.error
    assert [(a.kind, a.hibob_id) for a in result.plan.actions] == [("deactivate", ordinary)]


def test_case_5_a_held_list_keeps_its_first_held_at_and_reason(tmp_path) -> None:
    import datetime as dt

    world = World(tmp_path, RECONCILER_SYNC__MAX_DEACTIVATIONS="2")
    assert world.sync().outcome == "ok"
    for hibob_id in world.active_employees()[:3]:
        world.hibob.terminate(hibob_id, on=TODAY)
    assert world.sync().outcome == "held"
    first = {row.hibob_id: (row.held_at, row.reason) for row in world.store.list_held()}
    world.now += dt.timedelta(hours=2)
    for hibob_id in world.active_employees()[:3]:  # the breaker's reason changes
        world.hibob.terminate(hibob_id, on=TODAY)
    assert world.sync().outcome == "held"
    later = {row.hibob_id: (row.held_at, row.reason) for row in world.store.list_held()}
    assert len(later) == 6
    assert {h: later[h] for h in first} == first


def test_case_5_a_dry_run_whose_plan_would_be_held_exits_3(tmp_path) -> None:
    world = World(tmp_path, RECONCILER_SYNC__MAX_DEACTIVATIONS="2")
    assert world.sync().outcome == "ok"
    for hibob_id in world.active_employees()[:3]:
        world.hibob.terminate(hibob_id, on=TODAY)
    result = world.sync(dry_run=True)
    assert len(result.plan.held) == 3 and result.exit_code == 3
    assert world.store.list_held() == []


# -- case 2: scheduled deactivations count toward the breaker ------------------------------
def test_case_2_scheduled_deactivations_count_toward_the_breaker_and_are_held(tmp_path) -> None:
    import datetime as dt

    world = World(
        tmp_path,
        size=120,
        RECONCILER_MAPPING__DEACTIVATE_ON_LAST_DAY="true",
        RECONCILER_SYNC__MAX_DEACTIVATIONS="5",
    )
    assert world.sync().outcome == "ok"
    unscheduled = [
        h for h in world.active_employees() if not world.user_of(h).get("toBeDeactivatedAt")
    ]
    leavers = unscheduled[:40]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=TODAY + dt.timedelta(days=14))
    world.hibob.update_employee(unscheduled[50], **{"work.title": "New title"})
    world.hibob.update_employee(leavers[0], **{"work.title": "Leaving title"})
    result = world.sync()
    assert result.outcome == "held" and result.exit_code == 3
    assert {a.hibob_id for a in result.plan.held} == set(leavers)
    assert not any(world.user_of(h).get("toBeDeactivatedAt") for h in leavers)
    assert world.user_of(unscheduled[50])["job"] == "New title"  # updates go on
    assert world.user_of(leavers[0])["job"] == "Leaving title"  # and a held leaver's too
    assert {row.hibob_id for row in world.store.list_held()} == set(leavers)
    again = world.sync()
    assert again.outcome == "held" and len(again.plan.held) == 40
    released = world.sync(released=frozenset(leavers))
    assert released.outcome == "ok", released.error
    assert all(world.user_of(h).get("toBeDeactivatedAt") for h in leavers)
    assert world.store.list_held() == []
    assert world.sync().plan.actions == ()


def test_case_2_a_few_scheduled_deactivations_go_out_at_once(tmp_path) -> None:
    import datetime as dt

    world = World(
        tmp_path,
        RECONCILER_MAPPING__DEACTIVATE_ON_LAST_DAY="true",
        RECONCILER_SYNC__MAX_DEACTIVATIONS="5",
    )
    assert world.sync().outcome == "ok"
    leavers = world.active_employees()[:2]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=TODAY + dt.timedelta(days=14))
    result = world.sync()
    assert result.outcome == "ok" and result.plan.held == ()
    assert all(world.user_of(h).get("toBeDeactivatedAt") for h in leavers)


# -- case 6: deleted users missing from the default listing ----------------------------------
@pytest.mark.parametrize("lists_deleted", [False, True], ids=["hidden", "listed"])
def test_case_6_a_leaver_deleted_by_her_schedule_stays_deleted_after_the_nightly_pass(
    tmp_path, lists_deleted: bool
) -> None:
    import datetime as dt

    world = World(tmp_path, RECONCILER_MAPPING__DEACTIVATE_ON_LAST_DAY="true")
    world.learning.lists_deleted_by_default = lists_deleted
    assert world.sync().outcome == "ok"
    leaver = world.active_employees()[5]
    world.hibob.terminate(leaver, on=TODAY + dt.timedelta(days=2), last_day=TODAY)
    assert world.sync().outcome == "ok"
    world.now += dt.timedelta(days=1)  # 360Learning deleted her at midnight; Hibob: Active
    assert world.user_of(leaver)["status"] == "deleted"
    users = len(world.learning.users_by_mail())
    result = world.sync("full")
    assert result.outcome == "ok", result.error
    assert not [a for a in result.plan.actions if a.hibob_id == leaver and a.kind != "deactivate"]
    assert world.user_of(leaver)["status"] == "deleted"
    assert len(world.learning.users_by_mail()) == users


# -- case 9: a list value without its label --------------------------------------------------
def test_case_9_a_list_value_without_its_label_is_unknown_never_compared_or_written(
    tmp_path,
) -> None:
    import json

    condition = {"field": "work.department", "op": "in", "values": ["Engineering", "Sales"]}
    world = World(
        tmp_path,
        RECONCILER_SCOPE__GROUPS=json.dumps([{"conditions": [condition]}]),
        RECONCILER_MAPPING__ORGANIZATION="work.department",
    )
    assert world.sync().outcome == "ok"
    linked = [h for h in world.active_employees() if world.user_of(h)]
    hibob_id = linked[0]
    organization = world.user_of(hibob_id)["organization"]
    # An item Hibob gives no label for (removed from its list, or a label it withheld).
    world.hibob.records[hibob_id]["work.department"] = "424242"
    employee = world.services.hibob.get_employee(hibob_id, ["work.department"])
    assert employee.label("work.department") is None
    result = world.sync()
    assert result.outcome == "ok", result.error
    assert not [a for a in result.plan.actions if a.hibob_id == hibob_id]
    assert world.user_of(hibob_id)["status"] != "deleted"
    assert world.user_of(hibob_id)["organization"] == organization
    [problem] = [p for p in result.plan.problems if p.hibob_id == hibob_id]
    assert "work.department" in problem.reason


# -- case 7: a rehire whose deleted account was pseudonymized or re-mailed ---------------------
@pytest.mark.parametrize("kind", ["incremental", "full"])
def test_case_7_a_rehire_whose_deleted_account_was_re_mailed_gets_no_second_account(
    world: World, kind: str
) -> None:
    assert world.sync().outcome == "ok"
    active = set(world.active_employees())
    team: dict[str, list[str]] = {}
    for hibob_id in active:
        boss = world.hibob.records[hibob_id].get("work.reportsTo")
        if boss in active:
            team.setdefault(boss, []).append(hibob_id)
    manager = max(team, key=lambda m: len(team[m]))
    user_id = world.store.get_entry(manager).learning_user_id
    world.hibob.terminate(manager, on=TODAY)
    assert world.sync().outcome == "ok"
    world.learning.edit_user(user_id, mail=f"anonymized-{user_id}@deleted.invalid")  # GDPR
    world.hibob.rehire(manager)
    users = len(world.learning.users_by_mail())
    for _ in range(2):
        result = world.sync(kind)
        assert len(world.learning.users_by_mail()) == users  # no second account, ever
        assert world.store.get_entry(manager).learning_user_id == user_id
        assert world.learning.user(user_id)["status"] == "deleted"
        failures = dict(result.report.failures) if result.report else {}
        assert set(failures) == {manager}, failures  # her team does not fail with her
        assert "anonymized" in failures[manager] and result.report.systemic_error is None


# -- case 11: email swaps and rotations converge --------------------------------------------
def _mail_of(world: World, hibob_id: str) -> str:
    return world.hibob.records[hibob_id]["root.email"]


@pytest.mark.parametrize("size", [2, 3], ids=["swap", "rotation"])
def test_case_11_an_email_swap_or_rotation_converges_without_quarantine(world, size) -> None:
    assert world.sync().outcome == "ok"
    people = [h for h in world.active_employees() if world.user_of(h)][:size]
    accounts = [world.store.get_entry(h).learning_user_id for h in people]
    mails = [_mail_of(world, h) for h in people]
    for hibob_id, mail in zip(people, mails[1:] + mails[:1], strict=True):  # A gets B's ...
        world.hibob.update_employee(hibob_id, **{"root.email": mail})
    result = world.sync()
    assert result.outcome == "ok", result.report.failures if result.report else result.error
    for account, mail in zip(accounts, mails[1:] + mails[:1], strict=True):
        assert world.learning.user(account)["mail"] == mail.lower()
    assert [world.store.get_entry(h).learning_user_id for h in people] == accounts
    assert world.store.list_quarantined(world.now) == []
    assert world.sync().plan.actions == ()
    assert world.sync("full").plan.actions == ()


def test_case_11_a_chain_of_moves_is_applied_in_order() -> None:
    from reconciler.core.moves import compute_mail_moves

    # A takes B's mail, B takes C's, C takes a new one: C, then B, then A.
    moves = {"A": ("a@x", "b@x"), "B": ("b@x", "c@x"), "C": ("c@x", "new@x")}
    assert compute_mail_moves(moves) == [("C", "new@x"), ("B", "c@x"), ("A", "b@x")]
    swap = compute_mail_moves({"A": ("a@x", "b@x"), "B": ("b@x", "a@x")})
    assert len(swap) == 3 and swap[-1] in (("A", "b@x"), ("B", "a@x"))
    parked, mail = swap[0]
    assert mail not in ("a@x", "b@x") and mail.endswith("@x")
    assert [m for h, m in swap if h == parked][-1] == dict(A="b@x", B="a@x")[parked]
    assert compute_mail_moves({"A": ("a@x", "z@x")}) == [("A", "z@x")]


# -- case 10: targeted passes and unseen twins ---------------------------------------------
def test_case_10_a_hint_for_a_new_hire_whose_email_an_unseen_twin_shares_creates_nothing(
    world: World,
) -> None:
    assert world.sync().outcome == "ok"
    first = world.hibob.add_employee(first_name="Sam", surname="Lee", email="sam.lee@acme.example")
    twin = world.hibob.add_employee(first_name="Sam", surname="Lee", email="Sam.Lee@acme.example")
    users = len(world.learning.users_by_mail())
    result = world.sync("targeted", employee=first)  # a webhook hint, before any full search
    assert result.plan.actions == ()
    assert "ambiguous" in result.plan.problems[0].reason and twin in result.plan.problems[0].reason
    assert len(world.learning.users_by_mail()) == users
    other = world.hibob.add_employee(email="nina.park@acme.example")
    assert [a.kind for a in world.sync("targeted", employee=other).plan.actions] == ["create"]


# -- case 12: external-id errors ---------------------------------------------------------------
def test_case_12_a_reserved_platform_name_fails_check_and_the_pass_goes_on_without_links(
    world: World,
) -> None:
    import io

    from reconciler.commands.check import run_checks

    world.learning.reserved_platform_names = {"hibob"}
    result = world.sync()
    assert result.outcome == "ok", result.report.failures if result.report else result.error
    assert all(world.user_of(h) for h in world.active_employees())
    assert world.learning.external_ids() == []
    assert world.store.list_quarantined(world.now) == []
    out = io.StringIO()
    assert run_checks(world.settings, world.services, out) == 1
    [fail] = [line for line in out.getvalue().splitlines() if "reservedPlatformName" in line]
    assert "learning.external_id_platform" in fail and "'hibob'" in fail


def test_case_12_an_external_id_mapped_to_another_user_is_repaired(world: World) -> None:
    assert world.sync().outcome == "ok"
    hibob_id = world.active_employees()[3]
    user_id = world.store.get_entry(hibob_id).learning_user_id
    stranger = world.learning.seed_user("someone.else@acme.example")
    for mapping in world.learning.external_ids():
        if mapping["value"] == hibob_id:
            world.learning._mappings.pop(mapping["_id"])
    world.learning.add_external_id("hibob", stranger, hibob_id)  # a wrong mapping, by hand
    result = world.sync("full")
    assert result.outcome == "ok", result.report.failures if result.report else result.error
    targets = [m["targetId"] for m in world.learning.external_ids() if m["value"] == hibob_id]
    assert targets == [user_id]
    assert world.sync("full").plan.actions == ()


# -- case 3: a renamed Hibob list item empties a group -----------------------------------------
def _world_with_a_group_rule(tmp_path, **settings: str):
    import json
    from collections import Counter

    probe = World(tmp_path / "probe", size=200)
    item = Counter(r["work.department"] for r in probe.hibob.records.values()).most_common(1)
    department = probe.hibob._labels["department"][item[0][0]]
    world = World(tmp_path / "world", size=200, **settings)
    rules = [
        {
            "field": "work.department",
            "label": department,
            "role": "learner",
            "group_id": world.learning.sales_group_id,
        }
    ]
    world.services = world.build(RECONCILER_MAPPING__GROUPS=json.dumps(rules))
    assert world.sync().outcome == "ok"
    members = [
        h
        for h in world.active_employees()
        if (world.learning.sales_group_id, "learner")
        in world.learning.roles_of(world.store.get_entry(h).learning_user_id)
    ]
    assert len(members) > 25
    return world, department, members


def test_case_3_a_renamed_list_item_holds_the_membership_removals(tmp_path) -> None:
    world, department, members = _world_with_a_group_rule(tmp_path)
    group = world.learning.sales_group_id
    world.hibob.rename_list_item("department", department, department + " & Co")
    result = world.sync()
    assert result.outcome == "held" and result.exit_code == 3
    assert {h.hibob_id for h in result.plan.held} == set(members)
    assert all(
        (group, "learner") in world.learning.roles_of(world.store.get_entry(h).learning_user_id)
        for h in members
    )
    assert any(department in p.reason and "no longer" in p.reason for p in result.plan.problems)
    assert {row.hibob_id for row in world.store.list_held()} == set(members)
    released = world.sync(released=frozenset(members))
    assert released.outcome == "ok", released.error
    assert not any(
        (group, "learner") in world.learning.roles_of(world.store.get_entry(h).learning_user_id)
        for h in members
    )
    assert world.sync().plan.actions == ()


def test_case_3_a_few_membership_removals_go_out_at_once(tmp_path) -> None:
    world, department, members = _world_with_a_group_rule(tmp_path)
    mover = members[0]
    world.hibob.update_employee(
        mover,
        **{
            "work.department": world.hibob.records[
                next(h for h in world.active_employees() if h not in members)
            ]["work.department"]
        },
    )
    result = world.sync()
    assert result.outcome == "ok" and result.plan.held == ()


def test_case_3_check_reports_a_configured_label_no_longer_in_its_list(tmp_path) -> None:
    import io

    from reconciler.commands.check import run_checks

    world, department, _ = _world_with_a_group_rule(tmp_path)
    world.hibob.rename_list_item("department", department, department + " & Co")
    out = io.StringIO()
    assert run_checks(world.settings, world.services, out) == 1
    assert any(department in line for line in out.getvalue().splitlines() if "FAIL" in line)


# -- case 4: field visibility drift -------------------------------------------------------------
@pytest.mark.parametrize("as_null", [False, True], ids=["missing", "null"])
def test_case_4_a_field_withheld_for_most_people_clears_nothing(tmp_path, as_null) -> None:
    import json

    rule = {
        "field": "work.department",
        "label": "Engineering",
        "role": "learner",
        "group_id": "GROUP",
    }
    world = World(tmp_path, RECONCILER_MAPPING__ORGANIZATION="work.department")
    rule["group_id"] = world.learning.sales_group_id
    world.services = world.build(RECONCILER_MAPPING__GROUPS=json.dumps([rule]))
    assert world.sync("full").outcome == "ok"
    before = {h: dict(world.user_of(h)) for h in world.active_employees()}
    roles = {h: world.learning.roles_of(world.user_of(h)["_id"]) for h in before}
    world.hibob.hidden_as_null = as_null
    world.hibob.hidden_fields.update({"work.department", "work.title"})  # a permission change
    writes = len(world.learning_writes())
    for kind in ("full", "incremental"):
        result = world.sync(kind)
        assert result.outcome == "ok", result.error
        assert not [a for a in result.plan.actions if a.kind == "update"]
        reasons = " ".join(p.reason for p in result.plan.problems)
        assert "work.department" in reasons and "'Work'" in reasons
    assert len(world.learning_writes()) == writes
    for hibob_id, user in before.items():
        now = world.user_of(hibob_id)
        assert (now.get("organization"), now.get("job")) == (
            user.get("organization"),
            user.get("job"),
        )
        assert world.learning.roles_of(now["_id"]) == roles[hibob_id]
