"""Which account an unanswered create made (core.recovery): the one live, unlinked holder."""

from __future__ import annotations

import pytest

from reconciler.core.models import LearningUser
from reconciler.core.recovery import compute_unconfirmed_create_link


def user(user_id: str, mail: str, status: str = "invited") -> LearningUser:
    return LearningUser(user_id, status, {"mail": mail})


@pytest.mark.parametrize(
    ("users", "linked", "expected"),
    [
        ([], set(), None),
        ([user("u1", "amy@acme.example")], set(), "u1"),
        ([user("u1", "Amy@Acme.example")], set(), "u1"),
        ([user("u1", "amy@acme.example", "deleted")], set(), None),
        ([user("u1", "amy@acme.example")], {"u1"}, None),
        ([user("u1", "amy@acme.example"), user("u2", "amy@acme.example")], set(), None),
        ([user("u1", "amy.w@acme.example")], set(), None),
        ([user("u1", "amy@acme.example"), user("u2", "amy@acme.example")], {"u2"}, "u1"),
    ],
    ids=[
        "no account: the POST never arrived",
        "one account holds the mail",
        "the mail in other letter case",
        "a deleted account is not the create's",
        "another employee's account",
        "two holders: ambiguous, link nothing",
        "the filter's near match",
        "one holder besides another employee's",
    ],
)
def test_an_unanswered_create_links_only_the_one_live_unlinked_holder_of_its_mail(
    users: list[LearningUser], linked: set[str], expected: str | None
) -> None:
    assert compute_unconfirmed_create_link("amy@acme.example ", users, linked) == expected


def test_an_unconfirmed_write_takes_the_status_and_attributes_360learning_holds() -> None:
    from reconciler.core.models import AppliedState
    from reconciler.core.recovery import compute_confirmed_state

    stored = AppliedState(True, {"mail": "amy@acme.example", "job": "Chef"})
    held = LearningUser("u1", "deleted", {"mail": "amy@acme.example", "job": "Cook", "x": 1})
    confirmed = compute_confirmed_state(stored, held)
    assert confirmed.is_active is False
    assert confirmed.attributes == {"mail": "amy@acme.example", "job": "Cook"}
    assert compute_confirmed_state(stored, None) == stored
    live = LearningUser("u1", "active", {"mail": "amy@acme.example"})
    assert compute_confirmed_state(AppliedState(True, {"job": "Chef"}), live) == AppliedState(
        True, {"job": None}
    )


def test_an_unconfirmed_restore_or_an_invited_account_is_left_for_the_plan_to_finish() -> None:
    from reconciler.core.models import AppliedState
    from reconciler.core.recovery import compute_confirmed_state, is_restore_suspected

    invited = LearningUser("u1", "invited", {"mail": "amy@acme.example"})
    active = LearningUser("u1", "active", {"mail": "amy@acme.example"})
    deleted = LearningUser("u1", "deleted", {"mail": "amy@acme.example"})
    gone, live = AppliedState(False, {"job": "Chef"}), AppliedState(True, {"job": "Chef"})
    assert compute_confirmed_state(gone, invited) is None
    assert compute_confirmed_state(gone, active) is None  # restored: groups and team dropped
    assert compute_confirmed_state(live, invited) is None  # its activation was never sent
    assert is_restore_suspected(gone, active) and is_restore_suspected(gone, invited)
    assert not is_restore_suspected(live, active) and not is_restore_suspected(gone, deleted)
    assert not is_restore_suspected(gone, None)
