"""Behaviour of the 360Learning API v2 simulator, driven over HTTP through httpx.MockTransport."""

from __future__ import annotations

import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from tests.support import FakeClock

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BASE = "http://learning.test"


class FakeNow:
    def __init__(self) -> None:
        self.moment = NOW

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def now() -> FakeNow:
    return FakeNow()


@pytest.fixture
def sim(clock: FakeClock, now: FakeNow) -> LearningSimulator:
    return LearningSimulator(clock=clock, now=now, sleep=lambda _: None, enforce_rate_limits=False)


def token_for(client: httpx.Client) -> str:
    response = client.post(
        "/api/v2/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    assert response.status_code == 200
    return response.json()["access_token"]


def client_for(sim: LearningSimulator, base_url: str = BASE) -> httpx.Client:
    transport = httpx.MockTransport(sim.handle) if base_url == BASE else None
    client = httpx.Client(transport=transport, base_url=base_url)
    client.headers.update(
        {
            "authorization": f"Bearer {token_for(client)}",
            "360-api-version": "v2.0",
            "accept": "application/json",
        }
    )
    return client


@pytest.fixture
def api(sim: LearningSimulator) -> httpx.Client:
    return client_for(sim)


def create(
    api: httpx.Client,
    sim: LearningSimulator,
    mail: str | None = "jane@acme.test",
    query: str = "",
    **fields: object,
) -> httpx.Response:
    body = {"membership": {"groupId": sim.sales_group_id, "role": "learner"}, **fields}
    if mail is not None:
        body["mail"] = mail
    return api.post(f"/api/v2/users{query}", json=body)


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# ---- token and guards -------------------------------------------------------------------------


def test_token_response_carries_expires_in_as_a_string(sim: LearningSimulator) -> None:
    client = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE)
    body = client.post(
        "/api/v2/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    ).json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    assert body["expires_in"] == "3600"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "sandbox-client"},
            400,
            "invalid_request",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "scope": "x",
            },
            400,
            "invalid_request",
        ),
        (
            {
                "grant_type": "password",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
            400,
            "unsupported_grant_type",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "wrong",
            },
            401,
            "invalid_client",
        ),
    ],
)
def test_token_errors_use_flat_oauth_codes(
    sim: LearningSimulator, body: dict, status: int, code: str
) -> None:
    client = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE)
    response = client.post("/api/v2/oauth2/token", json=body)
    assert (response.status_code, response.json()) == (status, {"error": code})


def test_token_with_duplicate_properties_is_invalid_request(sim: LearningSimulator) -> None:
    client = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE)
    raw = (
        b'{"grant_type":"client_credentials","client_id":"sandbox-client",'
        b'"client_secret":"sandbox-secret","client_id":"sandbox-client"}'
    )
    response = client.post(
        "/api/v2/oauth2/token", content=raw, headers={"content-type": "application/json"}
    )
    assert response.json() == {"error": "invalid_request"}


def test_token_expiry_follows_the_injected_clock(
    sim: LearningSimulator, api: httpx.Client, clock: FakeClock
) -> None:
    clock.now += 3599
    assert api.get("/api/v2/users").status_code == 200
    clock.now += 1
    response = api.get("/api/v2/users")
    assert (response.status_code, response.json()) == (401, {"error": "invalid_token"})


def test_expire_tokens_invalidates_every_issued_token(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.expire_tokens()
    assert api.get("/api/v2/users").json() == {"error": "invalid_token"}
    api.headers["authorization"] = f"Bearer {token_for(api)}"
    assert api.get("/api/v2/users").status_code == 200


def test_missing_or_unknown_token_is_401_invalid_token(sim: LearningSimulator) -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(sim.handle),
        base_url=BASE,
        headers={"360-api-version": "v2.0"},
    )
    assert client.get("/api/v2/users").status_code == 401
    response = client.get("/api/v2/users", headers={"authorization": "Bearer nope"})
    assert (response.status_code, response.json()) == (401, {"error": "invalid_token"})


def test_missing_version_header_is_400_with_a_nested_error(api: httpx.Client) -> None:
    del api.headers["360-api-version"]
    response = api.get("/api/v2/users")
    assert (response.status_code, error_code(response)) == (400, "invalidApiVersion")
    wrong = api.get("/api/v2/users", headers={"360-api-version": "v1"})
    assert wrong.status_code == 400


def test_missing_scope_is_403_and_scope_changes_apply_to_issued_tokens(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.scopes.discard("users:write")
    response = create(api, sim)
    assert (response.status_code, error_code(response)) == (403, "invalid_scope")
    assert api.get("/api/v2/users").status_code == 200
    sim.scopes.add("users:write")
    assert create(api, sim).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/api/v2/users", "users:write"),
        ("POST", "/api/v2/external-ids", "externalIds:write"),
        ("POST", "/api/v2/groups/{group}/learner/000000000000000000000000", "groups:write"),
        ("PATCH", "/api/v2/users/not-an-id", "users:write"),
    ],
)
def test_the_scope_is_checked_before_the_body_and_path_are_validated(
    sim: LearningSimulator, api: httpx.Client, method: str, path: str, scope: str
) -> None:
    url = path.format(group=sim.root_group_id)
    users_before = sim.users_by_mail()
    granted = api.request(method, url, json={})
    sim.scopes.discard(scope)
    refused = api.request(method, url, json={})

    assert granted.status_code in (400, 404)
    assert (refused.status_code, error_code(refused)) == (403, "invalid_scope")
    assert sim.users_by_mail() == users_before and sim.external_ids() == []


def test_unknown_route_is_404(api: httpx.Client) -> None:
    assert api.get("/api/v2/nothing").status_code == 404


def test_malformed_path_id_is_400(api: httpx.Client) -> None:
    assert api.get("/api/v2/users/not-an-id").status_code == 400


# ---- listing users ----------------------------------------------------------------------------


def test_users_are_paginated_with_a_link_cursor_that_preserves_filters(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.page_size = 2
    for n in range(5):
        sim.seed_user(f"user{n}@acme.test")
    sim.delete_user(sim.users_by_mail()["user2@acme.test"]["_id"])
    seen, url, pages = [], "/api/v2/users?status[eq]=active", 0
    while url:
        response = api.get(url)
        assert isinstance(response.json(), list)
        seen += [user["mail"] for user in response.json()]
        url = response.links.get("next", {}).get("url")
        pages += 1
        if url:
            assert "status" not in url and "next=" in url
    assert seen == [
        "owner@sandbox.test",
        "user0@acme.test",
        "user1@acme.test",
        "user3@acme.test",
        "user4@acme.test",
    ]
    assert pages == 3


def test_last_page_has_no_link_header(sim: LearningSimulator, api: httpx.Client) -> None:
    sim.page_size = 2
    sim.seed_user("one@acme.test")
    response = api.get("/api/v2/users")
    assert len(response.json()) == 2 and "link" not in response.headers


@pytest.mark.parametrize("query", ["mail[eq]=b%40acme.test", "mail%5Beq%5D=b%40acme.test"])
def test_mail_filter_accepts_raw_and_encoded_brackets(
    sim: LearningSimulator, api: httpx.Client, query: str
) -> None:
    sim.seed_user("a@acme.test")
    wanted = sim.seed_user("b@acme.test")
    assert [u["_id"] for u in api.get(f"/api/v2/users?{query}").json()] == [wanted]


def test_mail_filter_compares_exactly_so_clients_cannot_rely_on_case_folding(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    # Sim decision: the docs do not say whether `mail` filters ignore case.
    sim.seed_user("B@Acme.test")
    assert api.get("/api/v2/users?mail[eq]=b@acme.test").json() == []
    assert len(api.get("/api/v2/users?mail[eq]=B@Acme.test").json()) == 1


def test_params_encoded_by_httpx_filter_users(sim: LearningSimulator, api: httpx.Client) -> None:
    wanted = sim.seed_user("a+tag@acme.test")
    response = api.get("/api/v2/users", params={"mail[eq]": "a+tag@acme.test"})
    assert [u["_id"] for u in response.json()] == [wanted]


def test_in_and_nin_filters_take_repeated_or_indexed_keys(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    a, b, c = (sim.seed_user(f"{n}@acme.test") for n in "abc")
    repeated = api.get("/api/v2/users?mail[in]=a@acme.test&mail[in]=c@acme.test").json()
    indexed = api.get(
        "/api/v2/users?mail%5Bin%5D%5B0%5D=a@acme.test&mail%5Bin%5D%5B1%5D=b@acme.test"
    ).json()
    excluded = api.get("/api/v2/users?mail[nin]=a@acme.test&mail[nin]=owner@sandbox.test").json()
    assert [u["_id"] for u in repeated] == [a, c]
    assert [u["_id"] for u in indexed] == [a, b]
    assert [u["_id"] for u in excluded] == [b, c]


def test_username_filter_matches_exactly(sim: LearningSimulator, api: httpx.Client) -> None:
    wanted = sim.seed_user(None, username="jdoe")
    assert [u["_id"] for u in api.get("/api/v2/users?username[eq]=jdoe").json()] == [wanted]
    assert api.get("/api/v2/users?username[eq]=JDOE").json() == []


def test_deleted_users_are_listed_only_when_a_status_filter_asks_for_them(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    # Sim decision (issue 19 case 6): the default listing leaves deleted users out.
    gone = sim.seed_user("gone@acme.test", status="deleted")
    here = sim.seed_user("here@acme.test")
    assert {u["_id"] for u in api.get("/api/v2/users").json()} == {sim.owner_id, here}
    mails = "/api/v2/users?mail[in]=gone%40acme.test&mail[in]=here%40acme.test"
    assert {u["_id"] for u in api.get(mails).json()} == {here}
    assert [u["_id"] for u in api.get("/api/v2/users?status[eq]=deleted").json()] == [gone]
    assert gone not in {u["_id"] for u in api.get("/api/v2/users?status[ne]=deleted").json()}
    sim.lists_deleted_by_default = True  # the other reading
    assert gone in {u["_id"] for u in api.get("/api/v2/users").json()}


@pytest.mark.parametrize(
    "query", ["deleted=true", "status[in]=active", "mail[like]=x", "status[eq]=disabled"]
)
def test_unsupported_list_filters_are_400(api: httpx.Client, query: str) -> None:
    response = api.get(f"/api/v2/users?{query}")
    assert (response.status_code, error_code(response)) == (400, "invalidInput")


def test_user_bodies_omit_absent_optional_fields(sim: LearningSimulator, api: httpx.Client) -> None:
    body = create(api, sim, firstName="Jane").json()
    assert set(body) == {"_id", "status", "lang", "mail", "firstName"}
    assert body["lang"] == "en" and len(body["_id"]) == 24
    assert int(body["_id"], 16) >= 0


def test_get_unknown_user_is_404_user_not_found(api: httpx.Client) -> None:
    response = api.get("/api/v2/users/" + "0" * 24)
    assert (response.status_code, error_code(response)) == (404, "userNotFound")


# ---- creating users ---------------------------------------------------------------------------


def test_create_returns_201_invited_user_holding_the_membership_role(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    response = create(api, sim, "Jane@Acme.test", firstName="Jane", lang="fr")
    user = response.json()
    assert response.status_code == 201
    assert (user["status"], user["mail"], user["lang"]) == ("invited", "Jane@Acme.test", "fr")
    assert sim.roles_of(user["_id"]) == {(sim.sales_group_id, "learner")}
    assert api.get(f"/api/v2/users/{user['_id']}").json() == user
    assert sim.invitations_sent == ["Jane@Acme.test"]


def test_send_invitation_email_false_sends_no_invitation(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    assert create(api, sim, query="?sendInvitationEmail=false").status_code == 201
    assert sim.invitations_sent == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mail": "x@acme.test"}, 400, "invalidInput"),
        (
            {"mail": "x@acme.test", "membership": {"groupId": "0" * 24, "role": "learner"}},
            404,
            "groupNotFound",
        ),
        (
            {"mail": "x@acme.test", "membership": {"groupId": "SALES", "role": "user-admin"}},
            400,
            "invalidInput",
        ),
        ({"firstName": "X", "membership": "SALES"}, 400, "invalidInput"),
        (
            {"firstName": "X", "membership": {"groupId": "SALES", "role": "learner"}},
            400,
            "mailAndUsernameUndefined",
        ),
        (
            {"mail": "not-a-mail", "membership": {"groupId": "SALES", "role": "learner"}},
            400,
            "mailInvalid",
        ),
        (
            {
                "mail": "x@acme.test",
                "firstName": "",
                "membership": {"groupId": "SALES", "role": "learner"},
            },
            400,
            "invalidInput",
        ),
        (
            {
                "mail": "x@acme.test",
                "password": "secret1234",
                "membership": {"groupId": "SALES", "role": "learner"},
            },
            400,
            "invalidInput",
        ),
        (
            {
                "mail": "x@acme.test",
                "toBeDeactivatedAt": "2026-01-01T00:00:00.000Z",
                "membership": {"groupId": "SALES", "role": "learner"},
            },
            400,
            "deactivationDateInvalid",
        ),
        (
            {
                "mail": "x@acme.test",
                "primaryGroupId": "0" * 24,
                "membership": {"groupId": "SALES", "role": "learner"},
            },
            400,
            "notMemberOfPrimaryGroup",
        ),
    ],
)
def test_create_rejects_invalid_input_with_the_documented_code(
    sim: LearningSimulator, api: httpx.Client, body: dict, status: int, code: str
) -> None:
    if isinstance(body.get("membership"), dict) and body["membership"]["groupId"] == "SALES":
        body["membership"]["groupId"] = sim.sales_group_id
    response = api.post("/api/v2/users", json=body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert list(sim.users_by_mail()) == ["owner@sandbox.test"]


def test_create_with_future_deactivation_date_stores_it_in_utc(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    user = create(api, sim, toBeDeactivatedAt="2026-06-30T12:00:00+02:00").json()
    assert user["toBeDeactivatedAt"] == "2026-06-30T10:00:00.000Z"


def test_create_with_mail_of_a_live_user_is_400_mail_already_used(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.seed_user("jane@acme.test", status="invited")
    response = create(api, sim, "JANE@acme.test")
    assert (response.status_code, error_code(response)) == (400, "mailAlreadyUsed")
    assert len(sim.users_by_mail()) == 2


def test_create_with_username_of_a_live_user_is_username_already_used(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.seed_user(None, username="jdoe")
    response = create(api, sim, None, username="jdoe")
    assert (response.status_code, error_code(response)) == (400, "usernameAlreadyUsed")


def test_mail_and_username_of_two_users_is_login_identifier_multiple_users_found(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    sim.seed_user("jane@acme.test", status="deleted")
    sim.seed_user(None, username="jdoe", status="deleted")
    response = create(api, sim, username="jdoe")
    assert error_code(response) == "loginIdentifierMultipleUsersFound"


def test_recreating_a_deleted_user_restores_it_invited_without_groups_or_managers(
    sim: LearningSimulator, api: httpx.Client, now: FakeNow
) -> None:
    boss = sim.seed_user("boss@acme.test")
    report = sim.seed_user("report@acme.test")
    jane = create(api, sim, firstName="Jane", lastName="Doe").json()["_id"]
    api.post(f"/api/v2/groups/{sim.engineering_group_id}/admin/{jane}")
    api.post(f"/api/v2/users/{jane}/managers/{boss}")
    api.post(f"/api/v2/users/{report}/managers/{jane}")
    assert api.delete(f"/api/v2/users/{jane}").status_code == 204
    now.moment += timedelta(days=1)
    response = create(api, sim, "JANE@acme.test", job="Analyst", query="?sendInvitationEmail=false")
    user = response.json()
    assert response.status_code == 200
    assert (user["_id"], user["status"]) == (jane, "invited")
    assert (user["firstName"], user["lastName"], user["job"]) == ("Jane", "Doe", "Analyst")
    assert user["deletedAt"] == ["2026-03-01T09:00:00.000Z"]
    assert user["reactivatedAt"] == ["2026-03-02T09:00:00.000Z"]
    assert sim.roles_of(jane) == {(sim.sales_group_id, "learner")}
    assert sim.managers_of(jane) == set() and sim.managers_of(report) == set()
    assert sim.invitations_sent == ["jane@acme.test"]


def test_restoring_by_username_works_without_mail(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    gone = sim.seed_user(None, status="deleted", username="jdoe")
    response = create(api, sim, None, username="jdoe")
    assert (response.status_code, response.json()["_id"]) == (200, gone)


# ---- editing, deleting, activating ------------------------------------------------------------


def test_patch_changes_given_fields_and_null_clears(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test", firstName="Jane", job="Dev", phone="+331")
    response = api.patch(f"/api/v2/users/{jane}", json={"job": "Lead", "phone": None})
    assert response.status_code == 200
    assert response.json() == sim.user(jane)
    assert (sim.user(jane)["job"], sim.user(jane)["firstName"]) == ("Lead", "Jane")
    assert "phone" not in sim.user(jane)


@pytest.mark.parametrize(
    "body", [{"lang": None}, {"lang": "xx"}, {"firstName": ""}, {"externalId": "1"}]
)
def test_patch_with_invalid_fields_is_400(
    sim: LearningSimulator, api: httpx.Client, body: dict
) -> None:
    jane = sim.seed_user("jane@acme.test")
    assert error_code(api.patch(f"/api/v2/users/{jane}", json=body)) == "invalidInput"


def test_patch_mail_of_another_user_is_mail_already_used(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test")
    sim.seed_user("john@acme.test", status="deleted")
    response = api.patch(f"/api/v2/users/{jane}", json={"mail": "John@acme.test"})
    assert (response.status_code, error_code(response)) == (400, "mailAlreadyUsed")
    new = api.patch(f"/api/v2/users/{jane}", json={"mail": "Jane.Doe@acme.test"})
    assert new.json()["mail"] == "Jane.Doe@acme.test"  # Sim decision: stored as sent


def test_patch_clearing_both_identifiers_is_rejected(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test", username="jane")
    assert api.patch(f"/api/v2/users/{jane}", json={"username": None}).status_code == 200
    response = api.patch(f"/api/v2/users/{jane}", json={"mail": None})
    assert error_code(response) == "userShouldHaveAtLeastOneValidIdentifier"
    assert sim.user(jane)["mail"] == "jane@acme.test"


def test_deactivation_date_rules_on_patch(sim: LearningSimulator, api: httpx.Client) -> None:
    gone = sim.seed_user("gone@acme.test", status="deleted")
    live = sim.seed_user("live@acme.test")
    future = {"toBeDeactivatedAt": "2026-04-01T00:00:00.000Z"}
    assert (
        error_code(api.patch(f"/api/v2/users/{gone}", json=future)) == "invalidUpdateOnDeletedUser"
    )
    assert (
        error_code(api.patch(f"/api/v2/users/{sim.owner_id}", json=future))
        == "ownerDeactivationNotAllowed"
    )
    past = {"toBeDeactivatedAt": "2026-02-01T00:00:00.000Z"}
    assert error_code(api.patch(f"/api/v2/users/{live}", json=past)) == "deactivationDateInvalid"
    assert api.patch(f"/api/v2/users/{live}", json=future).status_code == 200
    api.patch(f"/api/v2/users/{live}", json={"toBeDeactivatedAt": None})
    assert "toBeDeactivatedAt" not in sim.user(live)


def test_scheduled_deactivation_takes_effect_when_due(
    sim: LearningSimulator, api: httpx.Client, now: FakeNow
) -> None:
    live = sim.seed_user("live@acme.test")
    api.patch(f"/api/v2/users/{live}", json={"toBeDeactivatedAt": "2026-03-05T00:00:00.000Z"})
    now.moment = datetime(2026, 3, 5, tzinfo=UTC)
    user = api.get(f"/api/v2/users/{live}").json()
    assert user["status"] == "deleted" and user["deletedAt"] == ["2026-03-05T00:00:00.000Z"]
    assert "toBeDeactivatedAt" not in user


def test_delete_is_a_soft_delete_returning_204(sim: LearningSimulator, api: httpx.Client) -> None:
    jane = sim.seed_user("jane@acme.test")
    response = api.delete(f"/api/v2/users/{jane}")
    assert (response.status_code, response.content) == (204, b"")
    user = api.get(f"/api/v2/users/{jane}").json()
    assert user["status"] == "deleted" and user["deletedAt"] == ["2026-03-01T09:00:00.000Z"]
    assert sim.roles_of(jane) == set()


def test_owner_cannot_be_deleted(sim: LearningSimulator, api: httpx.Client) -> None:
    response = api.delete(f"/api/v2/users/{sim.owner_id}")
    assert (response.status_code, error_code(response)) == (400, "userIsCompanyOwner")
    assert sim.user(sim.owner_id)["status"] == "active"
    assert sim.roles_of(sim.owner_id) == {(sim.root_group_id, "owner")}


def test_activate_makes_invited_user_active_and_refuses_deleted(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = create(api, sim).json()["_id"]
    response = api.put(f"/api/v2/users/{jane}/activate")
    assert (response.status_code, response.json()["status"]) == (200, "active")
    api.delete(f"/api/v2/users/{jane}")
    refused = api.put(f"/api/v2/users/{jane}/activate")
    assert (refused.status_code, error_code(refused)) == (400, "userDeleted")


# ---- managers ---------------------------------------------------------------------------------


def test_managers_are_added_listed_and_removed(sim: LearningSimulator, api: httpx.Client) -> None:
    jane, boss = sim.seed_user("jane@acme.test"), sim.seed_user("boss@acme.test")
    assert api.post(f"/api/v2/users/{jane}/managers/{boss}").status_code == 204
    assert api.get(f"/api/v2/users/{jane}/managers").json() == [boss]
    assert api.delete(f"/api/v2/users/{jane}/managers/{boss}").status_code == 204
    assert sim.managers_of(jane) == set()
    again = api.delete(f"/api/v2/users/{jane}/managers/{boss}")
    assert (again.status_code, error_code(again)) == (400, "managerNotAssignedToUser")


def test_manager_errors_follow_the_spec(sim: LearningSimulator, api: httpx.Client) -> None:
    jane, gone = sim.seed_user("jane@acme.test"), sim.seed_user("gone@a.test", status="deleted")
    missing = "0" * 24
    assert error_code(api.post(f"/api/v2/users/{jane}/managers/{gone}")) == "managerDeleted"
    assert error_code(api.post(f"/api/v2/users/{gone}/managers/{jane}")) == "userDeleted"
    assert error_code(api.post(f"/api/v2/users/{missing}/managers/{jane}")) == "userNotFound"
    assert error_code(api.post(f"/api/v2/users/{jane}/managers/{missing}")) == "managerNotFound"
    assert api.post(f"/api/v2/users/{jane}/managers/{missing}").status_code == 404


def test_manager_list_is_paginated(sim: LearningSimulator, api: httpx.Client) -> None:
    sim.managers_page_size = 1
    jane = sim.seed_user("jane@acme.test")
    bosses = {sim.seed_user(f"boss{n}@acme.test") for n in range(2)}
    for boss in bosses:
        sim.add_manager(jane, boss)
    first = api.get(f"/api/v2/users/{jane}/managers")
    second = api.get(first.links["next"]["url"])
    assert set(first.json() + second.json()) == bosses and "link" not in second.headers


# ---- groups and roles -------------------------------------------------------------------------


def test_user_admin_path_role_shows_as_user_admin_in_bodies(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test", roles=set())
    path = f"/api/v2/groups/{sim.sales_group_id}/user-admin/{jane}"
    assert api.post(path).status_code == 204
    assert api.get(f"/api/v2/users/{jane}/roles").json() == [
        {"groupId": sim.sales_group_id, "role": "userAdmin"}
    ]
    assert api.get(f"/api/v2/groups/{sim.sales_group_id}/roles").json() == [
        {"userId": jane, "role": "userAdmin"}
    ]
    assert api.delete(path).status_code == 204
    assert sim.roles_of(jane) == set()


def test_body_spelling_user_admin_in_the_path_is_400(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test")
    response = api.post(f"/api/v2/groups/{sim.sales_group_id}/userAdmin/{jane}")
    assert (response.status_code, error_code(response)) == (400, "invalidInput")


def test_group_role_errors_follow_the_spec(sim: LearningSimulator, api: httpx.Client) -> None:
    jane, gone = sim.seed_user("jane@acme.test"), sim.seed_user("gone@a.test", status="deleted")
    group, missing = sim.sales_group_id, "0" * 24
    assert error_code(api.post(f"/api/v2/groups/{missing}/learner/{jane}")) == "groupNotFound"
    assert error_code(api.post(f"/api/v2/groups/{group}/learner/{missing}")) == "userNotFound"
    assert error_code(api.post(f"/api/v2/groups/{group}/learner/{gone}")) == "userDeleted"
    removal = api.delete(f"/api/v2/groups/{group}/coach/{jane}")
    assert (removal.status_code, error_code(removal)) == (404, "userNotFoundInGroup")
    sim.analyst_enabled = False
    assert error_code(api.post(f"/api/v2/groups/{group}/analyst/{jane}")) == "analystUnavailable"


def test_removing_learner_cascades_to_public_subgroups_down_to_the_first_private(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    emea = sim.add_group("EMEA", sim.sales_group_id)
    france = sim.add_group("France", emea)
    closed = sim.add_group("Closed", emea, public=False)
    under_closed = sim.add_group("Under closed", closed)
    jane = sim.seed_user(
        "jane@acme.test",
        roles={(g, "learner") for g in (sim.sales_group_id, emea, france, closed, under_closed)},
    )
    sim.add_role(jane, france, "coach")
    assert api.delete(f"/api/v2/groups/{sim.sales_group_id}/learner/{jane}").status_code == 204
    assert sim.roles_of(jane) == {(closed, "learner"), (under_closed, "learner"), (france, "coach")}


def test_groups_are_listed_and_fetched(sim: LearningSimulator, api: httpx.Client) -> None:
    groups = api.get("/api/v2/groups").json()
    assert {g["_id"] for g in groups} == set(sim.groups)
    root = api.get(f"/api/v2/groups/{sim.root_group_id}").json()
    assert root["public"] is True and "parentId" not in root
    leadership = api.get(f"/api/v2/groups/{sim.leadership_group_id}").json()
    assert (leadership["public"], leadership["parentId"]) == (False, sim.root_group_id)


# ---- external ids -----------------------------------------------------------------------------


def test_external_ids_are_created_listed_filtered_and_deleted(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane, john = sim.seed_user("jane@acme.test"), sim.seed_user("john@acme.test")
    created = api.post(
        "/api/v2/external-ids",
        json={"platform": "hibob", "targetType": "user", "targetId": jane, "value": "E1"},
    )
    mapping = created.json()
    assert created.status_code == 201
    assert mapping == {
        "_id": mapping["_id"],
        "platform": "hibob",
        "targetType": "user",
        "targetId": jane,
        "value": "E1",
    }
    sim.add_external_id("hibob", john, "E2")
    sim.add_external_id("other", john, "E1")
    found = api.get("/api/v2/external-ids?platform[eq]=hibob&value%5Beq%5D=E1").json()
    assert found == [mapping]
    by_target = api.get(f"/api/v2/external-ids?targetId[eq]={john}&type[eq]=user").json()
    assert {m["platform"] for m in by_target} == {"hibob", "other"}
    assert api.delete(f"/api/v2/external-ids/{mapping['_id']}").status_code == 204
    assert {m["value"] for m in sim.external_ids()} == {"E1", "E2"}
    assert len(sim.external_ids()) == 2


def test_external_id_conflicts_follow_the_spec(sim: LearningSimulator, api: httpx.Client) -> None:
    jane, john = sim.seed_user("jane@acme.test"), sim.seed_user("john@acme.test")
    sim.add_external_id("hibob", jane, "E1")

    def post(target: str, value: str) -> httpx.Response:
        return api.post(
            "/api/v2/external-ids",
            json={"platform": "hibob", "targetType": "user", "targetId": target, "value": value},
        )

    assert error_code(post(jane, "E9")) == "mappingAlreadyExists"
    assert error_code(post(john, "E1")) == "valueAlreadyUsed"
    missing = post("0" * 24, "E3")
    assert (missing.status_code, error_code(missing)) == (404, "resourceNotFound")
    gone = api.delete("/api/v2/external-ids/" + "0" * 24)
    assert (gone.status_code, error_code(gone)) == (404, "mappingIdNotFound")
    assert len(sim.external_ids()) == 1


def test_external_ids_are_paginated(sim: LearningSimulator, api: httpx.Client) -> None:
    sim.external_ids_page_size = 2
    for n in range(3):
        sim.add_external_id("hibob", sim.seed_user(f"u{n}@acme.test"), f"E{n}")
    sim.add_external_id("other", sim.owner_id, "X")
    first = api.get("/api/v2/external-ids?platform[eq]=hibob")
    second = api.get(first.links["next"]["url"]).json()
    assert [m["value"] for m in first.json() + second] == ["E0", "E1", "E2"]


# ---- rate limits, faults, log -----------------------------------------------------------------


def test_more_than_10_writes_per_second_get_429_without_retry_after(
    sim: LearningSimulator, api: httpx.Client, clock: FakeClock
) -> None:
    sim.enforce_rate_limits = True
    jane = sim.seed_user("jane@acme.test")
    statuses = [
        api.patch(f"/api/v2/users/{jane}", json={"job": f"J{n}"}).status_code for n in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    refused = api.patch(f"/api/v2/users/{jane}", json={"job": "late"})
    assert refused.json() == {"error": "tooManyRequests"}
    assert "retry-after" not in refused.headers
    assert api.get("/api/v2/users").status_code == 200
    assert sim.rate_limited_count == 2 and sim.user(jane)["job"] == "J9"
    clock.now += 1
    assert api.patch(f"/api/v2/users/{jane}", json={"job": "next"}).status_code == 200


def test_more_than_50_reads_per_second_get_429(
    sim: LearningSimulator, api: httpx.Client, clock: FakeClock
) -> None:
    sim.enforce_rate_limits = True
    statuses = []
    for _ in range(51):
        statuses.append(api.get("/api/v2/users").status_code)
        clock.now += 0.001
    assert statuses == [200] * 50 + [429]
    clock.now += 0.95
    assert api.get("/api/v2/users").status_code == 200


def test_token_calls_are_not_rate_limited(sim: LearningSimulator) -> None:
    client = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE)
    sim.enforce_rate_limits = True
    for _ in range(12):
        token_for(client)


def test_fault_knobs_fail_throttle_and_drop(sim: LearningSimulator, api: httpx.Client) -> None:
    sim.faults.fail_next(1, 503)
    assert api.get("/api/v2/users").status_code == 503
    sim.burst_429(2)
    throttled = [api.get("/api/v2/users") for _ in range(2)]
    assert [r.json() for r in throttled] == [{"error": "tooManyRequests"}] * 2
    assert all("retry-after" not in r.headers for r in throttled)
    sim.faults.drop_next(1)
    with pytest.raises(httpx.TransportError):
        api.get("/api/v2/users")
    assert api.get("/api/v2/users").status_code == 200
    assert [s for _, _, s in sim.requests][1:] == [503, 429, 429, 0, 200]


def test_request_log_records_method_path_and_status(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    jane = sim.seed_user("jane@acme.test")
    api.patch(f"/api/v2/users/{jane}", json={"job": "Lead"})
    assert sim.requests == [
        ("POST", "/api/v2/oauth2/token", 200),
        ("PATCH", f"/api/v2/users/{jane}", 200),
    ]


# ---- helpers, concurrency, loopback -----------------------------------------------------------


def test_hand_made_changes_show_through_the_api(sim: LearningSimulator, api: httpx.Client) -> None:
    jane = sim.seed_user("Jane@Acme.test", firstName="Jane")
    sim.edit_user(jane, firstName="Janet", job="Ops")
    sim.edit_user(jane, job=None)
    body = api.get(f"/api/v2/users/{jane}").json()
    assert (body["mail"], body["firstName"], "job" in body) == ("Jane@Acme.test", "Janet", False)
    sim.delete_user(jane)
    assert sim.users_by_mail()["Jane@Acme.test"]["status"] == "deleted"
    assert sim.requests[1:] == [("GET", f"/api/v2/users/{jane}", 200)]


def test_concurrent_creations_get_distinct_ids(sim: LearningSimulator, api: httpx.Client) -> None:
    results: list[int] = []

    def worker(n: int) -> None:
        results.append(create(api, sim, f"user{n}@acme.test").status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [201] * 8
    assert len({u["_id"] for u in sim.users_by_mail().values()}) == 9


def test_served_simulator_answers_over_loopback(sim: LearningSimulator) -> None:
    sim.page_size = 1
    with serve(sim.handle) as server, closing(client_for(sim, server.url)) as client:
        created = create(client, sim)
        assert created.status_code == 201
        first = client.get("/api/v2/users")
        assert first.links["next"]["url"].startswith(server.url)
        second = client.get(first.links["next"]["url"])
        assert [u["mail"] for u in first.json() + second.json()] == [
            "owner@sandbox.test",
            "jane@acme.test",
        ]
        assert client.delete(f"/api/v2/users/{created.json()['_id']}").status_code == 204


def test_group_roles_list_every_membership_sorted_per_user_in_pages_of_1000(
    sim: LearningSimulator, api: httpx.Client
) -> None:
    users = [sim.seed_user(f"member{n}@acme.test") for n in range(2100)]
    sim.add_role(users[5], sim.root_group_id, "admin")
    seen, url, pages = [], f"/api/v2/groups/{sim.root_group_id}/roles", 0
    while url:
        response = api.get(url)
        assert len(response.json()) <= 1000
        seen += response.json()
        url = response.links.get("next", {}).get("url")
        pages += 1
    assert pages == 3 and len(seen) == 2102  # 2,100 learners, one admin role, the owner
    assert {"userId": sim.owner_id, "role": "owner"} in seen
    assert {"userId": users[5], "role": "admin"} in seen
    assert [row["userId"] for row in seen] == sorted(row["userId"] for row in seen)
    assert set(seen[0]) == {"userId", "role"}
