"""The pure core as tables: `compute_plan` from literals, no simulator, no I/O (milliseconds)."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.core.desired import Desired
from reconciler.core.models import (
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    GroupRole,
    LearningUser,
    Reactivate,
    SnapshotEntry,
    Update,
)
from reconciler.core.plan import (
    Limits,
    PlanInput,
    compute_absence_checks,
    compute_plan,
    compute_unknown_share,
)

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
GROUP = GroupRole("g0", "learner")
LIMITS = Limits(max_deactivations=2, max_deactivation_ratio=1.0)


def want(hibob_id: str, verdict: str = "active", email: str | None = None, **kw) -> Desired:
    email = email if email is not None else f"p{hibob_id}@acme.example"
    return Desired(
        hibob_id,
        email,
        verdict,
        verdict,
        attributes={"mail": email, **kw},
        groups=frozenset({GROUP}),
    )


def linked(
    hibob_id: str, *, active: bool = True, state: bool = True, **attributes
) -> SnapshotEntry:
    email = f"p{hibob_id}@acme.example"
    applied = (
        AppliedState(
            active, {"mail": email, **attributes}, frozenset({GROUP}), is_external_id_linked=True
        )
        if state
        else None
    )
    return SnapshotEntry(hibob_id, f"u{hibob_id}", email, applied)


def plan_of(*desired: Desired, snapshot=(), limits=LIMITS, **data):
    return compute_plan(
        PlanInput(
            desired={d.hibob_id: d for d in desired},
            snapshot={e.hibob_id: e for e in snapshot},
            now=NOW,
            **data,
        ),
        limits,
    )


def kinds(plan) -> dict[str, str]:
    return {a.hibob_id: a.kind for a in plan.actions}


@pytest.mark.parametrize(
    ("desired", "entry", "expected"),
    [
        (want("1"), None, Create),
        (want("1"), linked("1"), None),
        (want("1", job="Boss"), linked("1"), Update),
        (want("1"), linked("1", active=False), Reactivate),
        (want("1", "inactive"), linked("1"), Deactivate),
        (want("1", "inactive"), linked("1", active=False), None),
        (want("1", "out_of_scope"), linked("1"), Deactivate),
        (want("1", "unknown"), linked("1"), None),
        (want("1", "skip"), None, None),
        (want("1"), linked("1", state=False), Adopt),  # a create that died half-way
    ],
)
def test_one_employee_verdict_and_snapshot_give_one_action(desired, entry, expected) -> None:
    plan = plan_of(desired, snapshot=[entry] if entry else [])
    assert [type(a) for a in plan.actions] == ([expected] if expected else [])


def test_unknown_and_skipped_employees_are_reported_not_written() -> None:
    plan = plan_of(want("1", "unknown"), want("2", "skip"), snapshot=[linked("1")])
    assert plan.actions == () and {p.hibob_id for p in plan.problems} == {"1", "2"}


def test_two_employees_sharing_an_email_are_both_skipped() -> None:
    plan = plan_of(want("1", email="x@acme.example"), want("2", email="x@acme.example"))
    assert plan.actions == ()
    assert all("ambiguous" in p.reason for p in plan.problems) and len(plan.problems) == 2


def test_an_email_last_read_for_another_employee_is_ambiguous_in_a_targeted_read() -> None:
    plan = plan_of(
        want("1", email="x@acme.example"), is_full_read=False, known_emails={"2": "x@acme.example"}
    )
    assert plan.actions == () and "ambiguous" in plan.problems[0].reason


def test_an_unlinked_user_with_the_email_is_adopted_and_its_roles_kept() -> None:
    user = LearningUser("uX", "active", {"mail": "p1@acme.example"})
    admin = GroupRole("root", "admin")
    plan = plan_of(
        want("1"),
        users_by_mail={"p1@acme.example": [user]},
        candidate_roles={"uX": frozenset({admin})},
    )
    [action] = plan.actions
    assert isinstance(action, Adopt) and action.learning_user_id == "uX"
    assert admin in action.state.kept_groups and admin not in action.add_groups


def test_the_platform_owner_is_never_adopted() -> None:
    owner = LearningUser("uO", "active", {"mail": "p1@acme.example"})
    plan = plan_of(
        want("1"),
        users_by_mail={"p1@acme.example": [owner]},
        candidate_roles={"uO": frozenset({GroupRole("root", "owner")})},
    )
    assert plan.actions == () and "owner" in plan.problems[0].reason


def test_a_deleted_account_linked_to_someone_else_is_never_taken() -> None:
    theirs = LearningUser("u2", "deleted", {"mail": "p1@acme.example"})
    other = linked("2", active=False)
    plan = plan_of(want("1"), snapshot=[other], users_by_mail={"p1@acme.example": [theirs]})
    assert plan.actions == () and "employee 2" in plan.problems[0].reason


def test_a_rehire_restores_its_own_account_by_its_stored_mail() -> None:
    entry = linked("1", active=False)
    plan = plan_of(want("1", email="new@acme.example"), snapshot=[entry])
    [action] = plan.actions
    assert isinstance(action, Reactivate)
    assert action.restore_mail == "p1@acme.example" and action.changes["mail"] == "new@acme.example"


def test_a_returning_manager_relinks_its_subordinates() -> None:
    boss = linked("1", active=False)
    member = SnapshotEntry(
        "2",
        "u2",
        "p2@acme.example",
        AppliedState(
            True,
            {"mail": "p2@acme.example"},
            frozenset({GROUP}),
            manager="1",
            is_external_id_linked=True,
        ),
    )
    plan = plan_of(want("1"), snapshot=[boss, member])
    [action] = plan.actions
    assert action.relink_subordinates == ("2",)


def test_the_breaker_holds_every_deactivation_over_the_count() -> None:
    plan = plan_of(
        *(want(str(i), "inactive") for i in range(3)), snapshot=[linked(str(i)) for i in range(10)]
    )
    assert plan.actions == () and len(plan.held) == 3 and plan.is_held_releasable


def test_held_deactivations_stay_held_until_released() -> None:
    data = dict(snapshot=[linked("1"), linked("2")], held_ids=frozenset({"1"}))
    assert [a.hibob_id for a in plan_of(want("1", "inactive"), **data).held] == ["1"]
    released = plan_of(want("1", "inactive"), released=frozenset({"1"}), **data)
    assert kinds(released) == {"1": "deactivate"} and released.held == ()


def test_the_rolling_window_counts_deactivations_of_earlier_passes() -> None:
    plan = plan_of(want("1", "inactive"), snapshot=[linked("1")], recent_deactivations=2)
    assert plan.held and "last hour" in plan.held_reason


def test_a_bad_read_holds_deactivations_and_no_release_lifts_it() -> None:
    plan = plan_of(
        want("1", "inactive"),
        snapshot=[linked("1")],
        allow_deactivations=True,
        read_problem="empty read",
    )
    assert plan.held and not plan.is_held_releasable


def test_absence_needs_a_read_by_id_and_a_403_is_unknown() -> None:
    snapshot = [linked("1"), linked("2"), linked("3")]
    first = plan_of(snapshot=snapshot, absent=frozenset({"1", "2"}))
    assert compute_absence_checks(first, PlanInput({}, {}, NOW, absent=frozenset({"1", "2"}))) == [
        "1",
        "2",
    ]
    final = plan_of(
        snapshot=snapshot, absent=frozenset({"1", "2"}), absence={"1": "confirmed", "2": "unknown"}
    )
    assert kinds(final) == {"1": "deactivate"}
    assert "refused" in final.problems[0].reason


def test_quarantined_employees_are_skipped_unless_retried() -> None:
    entry = SnapshotEntry(
        "1",
        "u1",
        "p1@acme.example",
        AppliedState(True, {"mail": "p1@acme.example"}, frozenset({GROUP})),
        failures=3,
        quarantined_until=NOW + dt.timedelta(hours=1),
        last_error="400 mailInvalid",
    )
    desired = want("1", job="New")
    assert plan_of(desired, snapshot=[entry]).actions == ()
    assert kinds(plan_of(desired, snapshot=[entry], retry_quarantined=True)) == {"1": "update"}


def test_a_scheduled_deletion_that_happened_is_recorded_not_reactivated() -> None:
    entry = linked("1", toBeDeactivatedAt="2026-11-28T08:00:00.000Z")
    leaving = Desired(
        "1",
        "p1@acme.example",
        "active",
        "garden leave",
        attributes={"mail": "p1@acme.example"},
        groups=frozenset({GROUP}),
        is_leaving=True,
    )
    [action] = plan_of(leaving, snapshot=[entry]).actions
    assert isinstance(action, Deactivate) and action.is_already_deleted


def test_a_missing_external_id_link_is_written_by_an_update() -> None:
    entry = SnapshotEntry(
        "1",
        "u1",
        "p1@acme.example",
        AppliedState(True, {"mail": "p1@acme.example"}, frozenset({GROUP})),
    )
    [action] = plan_of(want("1"), snapshot=[entry]).actions
    assert isinstance(action, Update) and action.fields == ["externalId"]
    assert action.state.is_external_id_linked


def test_deciding_fields_missing_for_too_many_fails_naming_the_category() -> None:
    desired = {
        str(i): Desired(str(i), None, "unknown", "x", unknown_field="internal.status")
        for i in range(3)
    }
    desired["9"] = want("9")
    problem = compute_unknown_share(desired, Limits(max_unknown_ratio=0.1))
    assert problem and "internal.status" in problem and "'Lifecycle'" in problem
    assert compute_unknown_share({"1": desired["1"], "9": want("9")}, Limits()) is None
