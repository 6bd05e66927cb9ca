"""Shadow mode's pure core as tables: disagreements from the plan over a full read, and the
report's split into lag and misses (product §2.4). No simulator, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from reconciler.core.desired import Desired
from reconciler.core.models import LearningUser, ManagerChange, Plan, Update
from reconciler.core.plan import ActualLinks, PlanInput, compute_plan
from reconciler.core.shadow import (
    Disagreement,
    ShadowRecord,
    compute_disagreements,
    compute_open_counts,
    compute_shadow_report,
)
from tests.test_plan import GROUP, LIMITS, NOW, linked, want


def account(hibob_id: str, status: str = "active", **attributes) -> LearningUser:
    mail = f"p{hibob_id}@acme.example"
    return LearningUser(f"u{hibob_id}", status, {"mail": mail, **attributes})


def shadow_of(*desired: Desired, users=(), snapshot=(), managers=None, roles=None, **data):
    actual = {u.learning_user_id: u for u in users}
    data_in = PlanInput(
        desired={d.hibob_id: d for d in desired},
        snapshot={e.hibob_id: e for e in snapshot},
        now=NOW,
        actual=actual,
        external_ids={},
        candidate_roles=roles
        if roles is not None
        else {u.learning_user_id: frozenset({GROUP}) for u in users},
        is_migration=True,
        **data,
    )
    plan = compute_plan(data_in, LIMITS)
    return {
        (d.hibob_id, str(d.kind), d.subject): d
        for d in compute_disagreements(plan, data_in, managers)
    }


def with_manager(wanted: Desired, manager: str | None) -> Desired:
    return replace(wanted, manager_hibob_id=manager, is_manager_known=True)


@pytest.mark.parametrize(
    ("desired", "users", "expected"),
    [
        ([want("1")], [], {("1", "missing", "")}),
        ([want("1")], [account("1", "deleted")], {("1", "missing", "")}),
        ([want("1")], [account("1", "invited")], {("1", "missing", "")}),
        ([want("1")], [account("1")], set()),
        ([want("1", firstName="Ada")], [account("1", firstName="Ada")], set()),
        (
            [want("1", firstName="Ada")],
            [account("1", firstName="Eve")],
            {("1", "fields", "firstName")},
        ),
        ([want("1", "inactive")], [account("1")], {("1", "not_deactivated", "")}),
        ([want("1", "out_of_scope")], [account("1")], {("1", "not_deactivated", "")}),
        ([want("1", "inactive")], [account("1", "deleted")], set()),
        ([want("1", "inactive")], [], set()),
        (
            [want("1", email="same@acme.example"), want("2", email="same@acme.example")],
            [],
            {("1", "ambiguous", ""), ("2", "ambiguous", "")},
        ),
    ],
    ids=[
        "no account: missing",
        "deleted account: missing",
        "invited, activate_users: missing",
        "the same account: nothing",
        "same fields: nothing",
        "a field differs: fields",
        "leaver still active: not_deactivated",
        "out of scope still active: not_deactivated",
        "leaver deleted: nothing",
        "leaver without an account: nothing",
        "shared email: ambiguous, both",
    ],
)
def test_disagreements_come_from_the_plan_over_a_full_read(desired, users, expected):
    assert set(shadow_of(*desired, users=users)) == expected


def test_a_field_disagreement_carries_both_values():
    found = shadow_of(want("1", job="Chef"), users=[account("1", job="Cook")])
    d = found[("1", "fields", "job")]
    assert (d.wanted, d.holds, d.email) == ("Chef", "Cook", "p1@acme.example")


def test_a_missing_group_membership_is_a_groups_disagreement():
    found = shadow_of(want("1"), users=[account("1")], roles={"u1": frozenset()})
    assert set(found) == {("1", "groups", "g0:learner")}
    assert found[("1", "groups", "g0:learner")].wanted == "member"


def test_a_manager_link_is_compared_with_the_managers_read():
    desired = [with_manager(want("1"), "2"), want("2")]
    users = [account("1"), account("2"), account("3")]
    assert set(shadow_of(*desired, users=users, managers={"u1": frozenset({"u2"})})) == set()
    wrong = shadow_of(*desired, users=users, managers={"u1": frozenset({"u3"})})
    assert set(wrong) == {("1", "manager", "")}
    assert (wrong[("1", "manager", "")].wanted, wrong[("1", "manager", "")].holds) == (
        "p2@acme.example",
        ["p3@acme.example"],
    )


def test_a_manager_without_an_account_is_reported_missing_not_as_a_link():
    found = shadow_of(
        with_manager(want("1"), "2"), want("2"), users=[account("1")], managers={"u1": frozenset()}
    )
    assert set(found) == {("2", "missing", "")}


def test_a_linked_leaver_still_active_is_not_deactivated():
    found = shadow_of(want("1", "inactive"), users=[account("1")], snapshot=[linked("1")])
    assert set(found) == {("1", "not_deactivated", "")}


def test_the_platform_owner_is_never_a_leaver_to_deactivate():
    found = shadow_of(
        want("1", "inactive"),
        users=[account("1")],
        roles={"u1": frozenset({replace(GROUP, role="owner")})},
    )
    assert found == {}


def test_a_custom_field_is_one_more_field_name():
    action = Update(
        "1",
        "p1@acme.example",
        "changed in Hibob",
        learning_user_id="u1",
        changes={"custom field: Cost center": "CC-12"},
    )
    data = PlanInput(desired={}, snapshot={}, now=NOW, actual={"u1": account("1")})
    [d] = compute_disagreements(Plan((action,)), data)
    assert (d.kind, d.subject, d.wanted, d.holds) == (
        "fields",
        "custom field: Cost center",
        "CC-12",
        None,
    )


def test_held_deactivations_are_disagreements_too():
    limits = replace(LIMITS, max_deactivations=0)
    data = PlanInput(
        desired={"1": want("1", "inactive")},
        snapshot={"1": linked("1")},
        now=NOW,
        actual={"u1": account("1")},
        external_ids={},
    )
    plan = compute_plan(data, limits)
    assert plan.held and not plan.actions
    assert [str(d.kind) for d in compute_disagreements(plan, data)] == ["not_deactivated"]


# -- the report --------------------------------------------------------------------------------
def record(hibob_id, kind="fields", first=0, last=None, closed=None, by="gone"):
    at = lambda minutes: NOW + dt.timedelta(minutes=minutes)  # noqa: E731
    return ShadowRecord(
        Disagreement(hibob_id, kind, "job" if kind == "fields" else ""),
        at(first),
        at(last if last is not None else (closed if closed is not None else first)),
        at(closed) if closed is not None else None,
        by if closed is not None else None,
    )


def test_the_report_separates_lag_from_misses():
    records = [
        record("1", first=0, closed=30),  # fixed by the incumbent within the hour: lag
        record("2", first=0, closed=90),  # fixed after it: late
        record("3", "missing", first=0, last=120),  # still open after it: a miss
        record("4", "manager", first=100, last=120),  # open, younger than the lag
        record("5", first=0, closed=10, by="applied"),  # the cut-over applied it
    ]
    report = compute_shadow_report(records, NOW + dt.timedelta(minutes=120), 60)
    assert [r["employee_id"] for r in report["lag"]] == ["1"]
    assert [r["employee_id"] for r in report["late"]] == ["2"]
    assert [r["employee_id"] for r in report["misses"]] == ["3"]
    assert [r["employee_id"] for r in report["pending"]] == ["4"]
    assert report["counts"]["misses"] == {"missing": 1}
    assert report["examples"]["lag"] == {"fields": ["1"]}
    assert (report["open"], report["applied"]) == (2, 1)
    assert report["misses"][0]["minutes"] == 120


def test_the_report_since_leaves_out_what_ended_before():
    records = [record("1", first=0, closed=5), record("2", first=0, last=50)]
    report = compute_shadow_report(
        records, NOW + dt.timedelta(minutes=50), 60, since=NOW + dt.timedelta(minutes=10)
    )
    assert (report["lag"], [r["employee_id"] for r in report["pending"]]) == ([], ["2"])


def test_open_counts_name_every_kind():
    counts = compute_open_counts([record("1"), record("2", closed=5), record("3", "groups")])
    assert counts == {
        "missing": 0,
        "not_deactivated": 0,
        "fields": 1,
        "manager": 0,
        "groups": 1,
        "ambiguous": 0,
    }


def test_a_migration_takes_over_the_account_the_external_id_names_under_a_former_mail():
    old = LearningUser("u1", "active", {"mail": "old@acme.example"})
    data = PlanInput(
        desired={"1": want("1")},
        snapshot={},
        now=NOW,
        actual={"u1": old},
        external_ids={"1": "u1"},
        candidate_roles={"u1": frozenset({GROUP})},
        is_migration=True,
    )
    [action] = compute_plan(data, LIMITS).actions
    assert (action.kind, action.learning_user_id) == ("adopt", "u1")
    assert action.changes == {"mail": "p1@acme.example"}  # a PATCH mail, never a second user
    found = {d.key for d in compute_disagreements(compute_plan(data, LIMITS), data)}
    assert found == {("1", "fields", "mail")}
    assert compute_plan(replace(data, is_migration=False), LIMITS).actions[0].kind == "create"


def test_a_migration_adoption_replaces_the_wrong_manager_it_read_and_keeps_a_right_one():
    desired = {"1": with_manager(want("1"), "2"), "2": want("2")}
    users = {u.learning_user_id: u for u in (account("1"), account("2"), account("3"))}

    def adopt_of(managers: frozenset[str]):
        data = PlanInput(
            desired=desired,
            snapshot={},
            now=NOW,
            actual=users,
            external_ids={},
            candidate_roles={uid: frozenset({GROUP}) for uid in users},
            actual_links={"u1": ActualLinks(managers=managers)},
            is_migration=True,
        )
        plan = compute_plan(data, LIMITS)
        return next(a for a in plan.actions if a.hibob_id == "1"), plan, data

    right, plan, data = adopt_of(frozenset({"u2"}))
    assert right.manager is None and compute_disagreements(plan, data) == ()
    wrong, plan, data = adopt_of(frozenset({"u3"}))
    assert wrong.manager == ManagerChange(None, "2", "u3")  # u3 is nobody's: removed by id
    [d] = compute_disagreements(plan, data)
    assert (d.kind, d.wanted, d.holds) == ("manager", "p2@acme.example", ["p3@acme.example"])
