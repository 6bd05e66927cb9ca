"""Fault matrix: both simulators fail, throttle, time out, drop answers (also after applying a
write), expire tokens, refuse credentials and scopes, during a first sync and after HR churn.

Every case: the pass under fault ends with bounded retries, its outcome and exit code say what
happened, nothing is duplicated; once the fault clears, one pass converges to the desired state
and the pass after it plans nothing. In-process (httpx.MockTransport), on a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from faults.churn import apply_churn
from faults.conftest import FaultWorld, record_figure
from faults.oracle import find_differences, find_duplicates, integrity

pytestmark = pytest.mark.faults

USERS = "/api/v2/users"
FOREVER = 10_000
MAX_ATTEMPTS = 6  # api.RetryPolicy.max_attempts
MAX_WAIT_PER_REQUEST = 5 * 60.0  # five waits, each capped by RetryPolicy (30 s, hinted 60 s)


@dataclass(frozen=True)
class Case:
    name: str
    inject: Callable[[FaultWorld], None]
    is_absorbed: bool
    """True: retries hide the fault (outcome ok, exit 0). False: the pass reports it (exit 1)."""
    passes_under_fault: int = 1
    is_credential_wide: bool = False
    """A 401/403 for the whole credential: the pass fails as a whole ("failed")."""
    phases: tuple[str, ...] = ("first sync", "after churn")


def _hibob_429_with_reset(world: FaultWorld) -> None:
    reset = str(int(world.time.now) + 7)
    world.hibob.faults.fail_next(
        3, 429, {"key": "TooManyRequests", "error": "Rate limit"}, {"X-RateLimit-Reset": reset}
    )


def _learning_revoked(world: FaultWorld) -> None:
    world.learning.client_secret = "rotated-by-an-admin"
    world.learning.expire_tokens()


def _learning_scope_removed(world: FaultWorld) -> None:
    world.learning.scopes.discard("users:write")


CASES = [
    Case("hibob 5xx, three in a row", lambda w: w.hibob.faults.fail_next(3, 503), True),
    Case(
        "hibob 5xx run beyond the retries", lambda w: w.hibob.faults.fail_next(FOREVER, 502), False
    ),
    Case("hibob 429 burst with X-RateLimit-Reset", _hibob_429_with_reset, True),
    Case(
        "hibob 429 storm without headers",
        lambda w: w.hibob.faults.fail_next(FOREVER, 429, {"key": "TooManyRequests"}),
        False,
    ),
    Case("hibob timeouts", lambda w: w.hibob.faults.timeout_next(2), True),
    Case("hibob dropped connections", lambda w: w.hibob.faults.drop_next(2), True),
    Case(
        "hibob 401 (token revoked)",
        lambda w: w.hibob.faults.fail_next(FOREVER, 401, {}),
        False,
        passes_under_fault=3,
    ),
    Case(
        "hibob 403 (permission group)",
        lambda w: w.hibob.faults.fail_next(FOREVER, 403, {"key": "Forbidden"}),
        False,
    ),
    Case("360learning 5xx, five in a row", lambda w: w.learning.faults.fail_next(5, 500), True),
    Case(
        "360learning 5xx run on creates",
        lambda w: w.learning.faults.fail_next(FOREVER, 503, method="POST", path_prefix=USERS),
        False,
    ),
    Case(
        "360learning 429 burst with Retry-After",
        lambda w: w.learning.faults.fail_next(
            5, 429, {"error": "tooManyRequests"}, {"Retry-After": "2"}
        ),
        True,
    ),
    Case(
        "360learning 429 burst without headers (as documented)",
        lambda w: w.learning.burst_429(5),
        True,
    ),
    Case("360learning 429 storm without headers", lambda w: w.learning.burst_429(FOREVER), False),
    Case(
        "360learning timeouts on writes",
        lambda w: w.learning.faults.timeout_next(4, method="POST"),
        True,
    ),
    Case("360learning dropped connections", lambda w: w.learning.faults.drop_next(4), True),
    Case(
        "360learning answer lost after a create was applied",
        lambda w: w.learning.faults.drop_after_apply_next(5, method="POST", path_prefix=USERS),
        True,
    ),
    Case(
        "360learning answer lost after a PATCH was applied",
        lambda w: w.learning.faults.drop_after_apply_next(5, method="PATCH"),
        True,
    ),
    Case(
        "360learning answer lost after a DELETE was applied",
        lambda w: w.learning.faults.drop_after_apply_next(5, method="DELETE"),
        True,
        phases=("after churn",),
    ),
    Case(
        "360learning answer lost after an activation was applied",
        lambda w: w.learning.faults.drop_after_apply_next(5, method="PUT"),
        True,
    ),
    Case(
        "360learning answer lost after an external id was written",
        lambda w: w.learning.faults.drop_after_apply_next(
            5, method="POST", path_prefix="/api/v2/external-ids"
        ),
        True,
    ),
    Case(
        "360learning answer lost after a manager link was written",
        lambda w: w.learning.faults.drop_after_apply_next(
            3, method="POST", path_prefix=f"{USERS}/"
        ),
        True,
    ),
    Case(
        "360learning answer lost after a token was issued",
        lambda w: (
            w.learning.expire_tokens(),
            w.learning.faults.drop_after_apply_next(1, path_prefix="/api/v2/oauth2/token"),
        ),
        True,
    ),
    Case(
        "360learning token expires mid-pass",
        lambda w: w.learning.faults.on_request(12, w.learning.expire_tokens),
        True,
    ),
    Case(
        "360learning 401 (client secret rotated)",
        _learning_revoked,
        False,
        passes_under_fault=3,
        is_credential_wide=True,
    ),
    Case(
        "360learning 403 (users:write scope removed)",
        _learning_scope_removed,
        False,
        passes_under_fault=3,
        is_credential_wide=True,
    ),
]


def _clear(world: FaultWorld) -> None:
    world.hibob.faults.clear()
    world.learning.faults.clear()
    world.learning.client_secret = "sandbox-secret"
    world.learning.scopes.add("users:write")


def _with_users_made_by_hand(world: FaultWorld) -> FaultWorld:
    """A first sync on a platform that already has some of the employees (stale, one deleted):
    they are adopted, which PATCHes and restores."""
    for number, hibob_id in enumerate(world.active_employees()[5:11]):
        mail = world.hibob.records[hibob_id]["root.email"]
        world.learning.seed_user(
            mail, "deleted" if number == 0 else "invited", job="Stale title", firstName="Stale"
        )
    return world


def _churned(world: FaultWorld) -> FaultWorld:
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    apply_churn(world.hibob, random.Random(3), 12, world.former_mails, tag="m")
    return world


KNOWN_BUGS: dict[tuple[str, str], str] = {}


def _marks(case: Case, phase: str) -> list:
    reason = KNOWN_BUGS.get((case.name, phase))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(
    ("case", "phase"),
    [
        pytest.param(c, phase, id=f"{c.name}, {phase}", marks=_marks(c, phase))
        for c in CASES
        for phase in c.phases
    ],
)
def test_every_fault_ends_with_bounded_retries_says_what_happened_and_converges_once_cleared(
    fault_world: FaultWorld, case: Case, phase: str
) -> None:
    world = fault_world
    _with_users_made_by_hand(world)
    if phase == "after churn":
        _churned(world)
    injected_before, sleeps_before = world.injected(), len(world.time.sleeps)
    learning_before = len(world.learning.requests)
    case.inject(world)
    for _ in range(case.passes_under_fault):
        requests_before = len(world.hibob.requests) + len(world.learning.requests)
        result = world.sync()
        requests = len(world.hibob.requests) + len(world.learning.requests) - requests_before
        retries = world.services.hibob.stats.retries + world.services.learning.stats.retries
        assert retries <= world.injected() - injected_before, "a retry nothing asked for"
        waits = world.time.sleeps[sleeps_before:]
        assert all(w <= 60.0 for w in waits), max(waits)
        assert requests <= MAX_ATTEMPTS * 400, requests
        assert find_duplicates(world.hibob, world.learning, world.former_mails) == []
    injected = world.injected() - injected_before
    if case.is_credential_wide:  # a changed credential or scope, not a Faults knob
        injected += sum(
            1 for *_, status in world.learning.requests[learning_before:] if status in (401, 403)
        )
    assert injected > 0, "the fault never fired"
    record_figure("fault matrix: faults injected", injected)
    record_figure("fault matrix: cases", 1)
    detail = result.report.failures[:3] if result.report else result.error
    if case.is_absorbed:
        assert (result.outcome, result.exit_code) == ("ok", 0), detail
    elif case.is_credential_wide:
        assert (result.outcome, result.exit_code) == ("failed", 1), detail
        assert result.error and ("scope" in result.error or "client_secret" in result.error)
    else:
        assert result.outcome in ("failed", "errors") and result.exit_code == 1, detail

    _clear(world)
    healed = world.sync()

    assert (healed.outcome, healed.exit_code) == ("ok", 0), (
        healed.report.failures[:3] if healed.report else healed.error
    )
    assert find_differences(world.hibob, world.learning, world.db, world.former_mails) == []
    assert world.sync().plan.is_empty
    assert world.sync("full").plan.is_empty
    assert integrity(world.db) == "ok"
