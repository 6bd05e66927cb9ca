"""Contract tests for 360Learning: LearningClient requests and LearningSimulator responses.

Every exchange runs through `ValidatingTransport`, which checks both halves against
../shared/specs/360learning-core-api.openapi.json; the module skips when that folder is absent.
"""

from __future__ import annotations

import json

import httpx
import pytest
from contract import ValidatingTransport, load_spec, require_specs, validate_exchange

from reconciler.clients.learning import LearningClient
from reconciler.commands.wiring import build_pass_context
from reconciler.errors import ApiRejected
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from reconciler.settings_sections import LearningSettings
from tests.support import FakeClock, World

require_specs()

BASE_URL = "http://learning.test"
UNKNOWN_ID = "0123456789abcdef01234567"
# The operations the reconciler uses; each must have been validated at least once.
USED_OPERATIONS = {
    "POST /api/v2/oauth2/token",
    "GET /api/v2/users",
    "POST /api/v2/users",
    "GET /api/v2/users/{userId}",
    "PATCH /api/v2/users/{userId}",
    "DELETE /api/v2/users/{userId}",
    "PUT /api/v2/users/{userId}/activate",
    "GET /api/v2/users/{userId}/managers",
    "POST /api/v2/users/{userId}/managers/{managerId}",
    "DELETE /api/v2/users/{userId}/managers/{managerId}",
    "POST /api/v2/groups/{groupId}/{role}/{userId}",
    "DELETE /api/v2/groups/{groupId}/{role}/{userId}",
    "GET /api/v2/users/{userId}/roles",
    "POST /api/v2/external-ids",
    "GET /api/v2/external-ids",
}


@pytest.fixture(scope="module")
def spec():
    return load_spec("learning")


@pytest.fixture
def clock():
    return FakeClock(1000.0)


@pytest.fixture
def sim(clock):
    return LearningSimulator(enforce_rate_limits=False, clock=clock, sleep=clock.advance)


def _throttle_reads(sim: LearningSimulator) -> None:
    sim.enforce_rate_limits = True
    sim.read_limit_per_second = 1


@pytest.fixture
def transport(sim, spec):
    return ValidatingTransport(sim.handle, spec)


@pytest.fixture
def client(sim, transport, clock):
    settings = LearningSettings(
        base_url=BASE_URL,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        default_group_id=sim.root_group_id,
    )
    client = LearningClient(settings, transport=transport, sleep=clock.advance, clock=clock)
    yield client
    client.close()


@pytest.fixture
def raw(transport):
    """A bare httpx client for hand-built requests, as the docs show them."""
    with httpx.Client(base_url=BASE_URL, transport=transport) as raw:
        yield raw


def _bearer(raw: httpx.Client) -> dict[str, str]:
    body = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    token = raw.post("/api/v2/oauth2/token", json=body).json()["access_token"]
    return {
        "authorization": f"Bearer {token}",
        "360-api-version": "v2.0",
        "accept": "application/json",
    }


def _create(client: LearningClient, sim: LearningSimulator, mail: str, **attributes):
    return client.create_user(
        {"mail": mail, **attributes},
        group_id=sim.root_group_id,
        role="learner",
        send_invitation_email=False,
    )


# ---- hand-built documented requests against the simulator -----------------------------------


def test_documented_user_lifecycle_requests_get_documented_answers(raw, sim, transport):
    headers = _bearer(raw)
    create = {
        "mail": "jane.doe@acme.example",
        "firstName": "Jane",
        "lastName": "Doe",
        "job": "Analyst",
        "lang": "fr",
        "organization": "ACME",
        "membership": {"groupId": sim.root_group_id, "role": "learner"},
    }
    created = raw.post("/api/v2/users?sendInvitationEmail=false", json=create, headers=headers)
    user_id = created.json()["_id"]
    users = f"/api/v2/users/{user_id}"
    assert (
        raw.get(
            "/api/v2/users", params={"mail[eq]": "jane.doe@acme.example"}, headers=headers
        ).json()[0]["_id"]
        == user_id
    )
    raw.get(users, headers=headers)
    raw.patch(users, json={"job": None, "phone": "+33123456789"}, headers=headers)
    raw.put(f"{users}/activate", headers=headers)
    raw.post(f"{users}/managers/{sim.owner_id}", headers=headers)
    raw.get(f"{users}/managers", headers=headers)
    raw.delete(f"{users}/managers/{sim.owner_id}", headers=headers)
    raw.post(f"/api/v2/groups/{sim.sales_group_id}/user-admin/{user_id}", headers=headers)
    raw.get(f"{users}/roles", headers=headers)
    raw.delete(f"/api/v2/groups/{sim.sales_group_id}/user-admin/{user_id}", headers=headers)
    mapping = {"platform": "hibob", "targetType": "user", "targetId": user_id, "value": "42"}
    raw.post("/api/v2/external-ids", json=mapping, headers=headers)
    raw.get("/api/v2/external-ids?platform[eq]=hibob&value[eq]=42", headers=headers)
    raw.delete(users, headers=headers)
    restored = raw.post("/api/v2/users", json=create, headers=headers)

    assert transport.problems == []
    assert created.status_code == 201 and restored.status_code == 200
    assert sim.user(user_id)["status"] == "invited"
    assert transport.operations() >= USED_OPERATIONS


def test_documented_error_answers_match_their_schemas(raw, sim, transport):
    headers = _bearer(raw)
    owner = sim.user(sim.owner_id)
    taken = {"mail": owner["mail"], "membership": {"groupId": sim.root_group_id, "role": "learner"}}
    raw.post("/api/v2/users", json=taken, headers=headers)
    raw.get(f"/api/v2/users/{UNKNOWN_ID}", headers=headers)
    raw.patch(f"/api/v2/users/{UNKNOWN_ID}", json={"job": "x"}, headers=headers)
    raw.delete(f"/api/v2/users/{sim.owner_id}", headers=headers)
    deleted = sim.seed_user("gone@acme.example", status="deleted")
    raw.put(f"/api/v2/users/{deleted}/activate", headers=headers)
    raw.post(f"/api/v2/users/{UNKNOWN_ID}/managers/{sim.owner_id}", headers=headers)
    raw.delete(f"/api/v2/groups/{sim.sales_group_id}/learner/{sim.owner_id}", headers=headers)
    raw.get("/api/v2/users", headers={**headers, "authorization": "Bearer expired"})
    _throttle_reads(sim)
    raw.get("/api/v2/users", headers=headers)
    raw.get("/api/v2/users", headers=headers)
    raw.post(
        "/api/v2/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "no",
        },
    )

    assert transport.problems == []
    assert {status for _, status in transport.outcomes()} >= {400, 401, 404, 429}


def test_pagination_link_and_its_next_cursor_follow_the_spec(raw, sim, transport):
    sim.page_size = 2
    for number in range(5):
        sim.seed_user(f"user{number}@acme.example")
    headers = _bearer(raw)
    url: str | None = "/api/v2/users?status[ne]=deleted"
    pages = 0
    while url:
        response = raw.get(url, headers=headers)
        url = response.links.get("next", {}).get("url")
        pages += 1

    assert transport.problems == []
    assert pages == 3


# ---- every client operation through the validating transport -------------------------------


def test_every_client_operation_sends_and_receives_documented_messages(client, sim, transport):
    user, restored = _create(
        client,
        sim,
        "amy.miles@acme.example",
        firstName="Amy",
        lastName="Miles",
        job="Engineer",
        lang="en",
    )
    user_id = user.learning_user_id
    client.activate_user(user_id)
    client.update_user(user_id, {"job": None, "organization": "Engineering"})
    assert [u.learning_user_id for u in client.find_users_by_mail("amy.miles@acme.example")] == [
        user_id
    ]
    assert user_id in {u.learning_user_id for u in client.list_users(status="active")}
    assert [
        u.learning_user_id
        for u in client.list_users(mails=["amy.miles@acme.example", "nobody@acme.example"])
    ] == [user_id]
    client.add_manager(user_id, sim.owner_id)
    assert client.list_managers(user_id) == [sim.owner_id]
    client.remove_manager(user_id, sim.owner_id)
    client.add_group_role(sim.sales_group_id, "userAdmin", user_id)
    assert {(r.group_id, r.role) for r in client.list_user_roles(user_id)} >= {
        (sim.sales_group_id, "userAdmin")
    }
    client.remove_group_role(sim.sales_group_id, "userAdmin", user_id)
    client.create_external_id("hibob", user_id, "1001")
    assert client.list_external_ids("hibob") == {"1001": user_id}
    assert client.get_user(user_id).status == "active"
    client.deactivate_user(user_id)
    again, restored = _create(client, sim, "amy.miles@acme.example")

    assert transport.problems == []
    assert again.learning_user_id == user_id and restored
    assert sim.user(user_id)["status"] == "invited"
    assert sim.roles_of(user_id) == {(sim.root_group_id, "learner")}
    assert transport.operations() >= USED_OPERATIONS


def test_client_meets_a_taken_mail_as_the_documented_400(client, sim, transport):
    _create(client, sim, "taken@acme.example")

    with pytest.raises(ApiRejected) as raised:
        _create(client, sim, "taken@acme.example")

    assert raised.value.status == 400 and raised.value.code == "mailAlreadyUsed"
    assert transport.problems == []
    assert ("POST /api/v2/users", 400) in transport.outcomes()


def test_client_meets_an_unknown_user_as_the_documented_404(client, transport):
    assert client.get_user(UNKNOWN_ID) is None
    with pytest.raises(ApiRejected) as raised:
        client.update_user(UNKNOWN_ID, {"job": "Engineer"})

    assert raised.value.code == "userNotFound"
    assert transport.problems == []
    assert {
        ("GET /api/v2/users/{userId}", 404),
        ("PATCH /api/v2/users/{userId}", 404),
    } <= transport.outcomes()


def test_client_renews_an_expired_token_after_the_documented_401(client, sim, transport):
    client.list_managers(sim.owner_id)
    sim.expire_tokens()

    assert client.get_user(sim.owner_id).learning_user_id == sim.owner_id
    assert transport.problems == []
    assert ("GET /api/v2/users/{userId}", 401) in transport.outcomes()
    assert [rq.url.path for rq, _ in transport.exchanges].count("/api/v2/oauth2/token") == 2


def test_client_retries_after_the_documented_429(client, sim, transport):
    _throttle_reads(sim)
    client.list_managers(sim.owner_id)

    assert client.get_user(sim.owner_id).learning_user_id == sim.owner_id
    assert transport.problems == []
    assert ("GET /api/v2/users/{userId}", 429) in transport.outcomes()


def test_the_429_burst_knob_answers_the_documented_429(raw, sim, transport):
    headers = _bearer(raw)
    sim.burst_429(1)

    raw.get(f"/api/v2/users/{sim.owner_id}", headers=headers)

    assert transport.problems == []


def test_a_served_simulator_can_be_validated_over_real_http(sim, spec, clock):
    transport = ValidatingTransport(httpx.HTTPTransport(), spec)
    with serve(sim.handle) as served:
        settings = LearningSettings(
            base_url=served.url, client_id="sandbox-client", client_secret="sandbox-secret"
        )
        client = LearningClient(settings, transport=transport, sleep=clock.advance, clock=clock)
        user, _ = _create(client, sim, "served@acme.example")
        client.get_user(user.learning_user_id)
        client.close()

    assert transport.problems == []
    assert transport.operations() == {
        "POST /api/v2/oauth2/token",
        "POST /api/v2/users",
        "GET /api/v2/users/{userId}",
    }


def test_reconcile_passes_exchange_only_documented_messages_with_both_apis(tmp_path):
    world = World(tmp_path, size=20)
    # The generator's deliberately invalid work emails ("not-an-email") break the spec's
    # `format: email` on root.email; whether Bob can hold such a value is undocumented.
    for hibob_id in world.hibob_company_bad("invalid_email"):
        world.hibob.records[hibob_id]["root.email"] = f"fixed{hibob_id}@acme.example"
    learning = ValidatingTransport(world.learning.handle, load_spec("learning"))
    hibob = ValidatingTransport(world.hibob.handle, load_spec("hibob"))
    world.services = build_pass_context(
        world.settings, hibob_transport=hibob, learning_transport=learning, store=world.store
    )
    leaver = world.active_employees()[3]

    world.sync("full")
    world.hibob.terminate(leaver, on=world.hibob.today)
    world.sync("full")

    assert learning.problems == [] and hibob.problems == []
    assert world.user_of(leaver)["status"] == "deleted"
    assert {"POST /api/v2/users", "DELETE /api/v2/users/{userId}"} <= learning.operations()


# ---- the validator itself must be able to fail ---------------------------------------------


def _exchange(method: str, path: str, status: int, body=None, sent=None, headers=None):
    request = httpx.Request(
        method,
        BASE_URL + path,
        json=sent,
        headers=headers or {"authorization": "Bearer t", "360-api-version": "v2.0"},
    )
    return request, httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "sent", "headers", "expected"),
    [
        (
            "POST",
            "/api/v2/users",
            201,
            {"_id": UNKNOWN_ID, "status": "invited", "lang": "en"},
            {"mail": "a@acme.example"},
            None,
            "'membership' is a required property",
        ),
        (
            "GET",
            f"/api/v2/users/{UNKNOWN_ID}",
            200,
            {"status": "active", "lang": "en"},
            None,
            None,
            "'_id' is a required property",
        ),
        (
            "GET",
            f"/api/v2/users/{UNKNOWN_ID}",
            404,
            {"error": "userNotFound"},
            None,
            None,
            "is not of type 'object'",
        ),
        ("GET", "/api/v2/users?deleted=false", 200, [], None, None, "'deleted' is not in the spec"),
        ("GET", "/api/v2/users?status[eq]=disabled", 200, [], None, None, "is not one of"),
        ("GET", "/api/v2/users", 200, [], None, {"authorization": "Bearer t"}, "360-api-version"),
        ("POST", "/api/v2/groups/members", 204, None, None, None, "not found"),
        (
            "POST",
            f"/api/v2/groups/{UNKNOWN_ID}/userAdmin/{UNKNOWN_ID}",
            204,
            None,
            None,
            None,
            "role",
        ),
        ("GET", f"/api/v2/users/{UNKNOWN_ID}", 409, {"error": "conflict"}, None, None, "409"),
    ],
)
def test_validator_rejects_an_exchange_that_breaks_the_spec(
    spec, method, path, status, body, sent, headers, expected
):
    request, response = _exchange(method, path, status, body, sent, headers)

    with pytest.raises(AssertionError, match=expected) as raised:
        validate_exchange(spec, request, response)

    assert path.split("?")[0] in str(raised.value)


def test_validating_transport_records_and_raises_a_bad_simulator_answer(spec):
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "active", "lang": "en"})

    transport = ValidatingTransport(broken, spec)
    with httpx.Client(base_url=BASE_URL, transport=transport) as raw:
        with pytest.raises(AssertionError, match="_id"):
            raw.get(
                f"/api/v2/users/{UNKNOWN_ID}",
                headers={"authorization": "Bearer t", "360-api-version": "v2.0"},
            )

    assert len(transport.exchanges) == 1 and len(transport.problems) == 1


# ---- custom fields (api/360learning.md §4) --------------------------------------------------


def test_custom_field_requests_and_answers_follow_the_spec(raw, sim, transport):
    headers = _bearer(raw)
    cost = sim.add_custom_field("Cost center", "string", authorized_values=["CC-12"])
    end = sim.add_custom_field("Contract end", "date")
    user = sim.seed_user("ada@acme.example")
    values = f"/api/v2/users/{user}/custom-fields/values"

    raw.get("/api/v2/custom-fields?targetType[eq]=users&name[eq]=Cost%20center", headers=headers)
    raw.get(f"/api/v2/custom-fields/{cost}/authorized-values", headers=headers)
    raw.get(f"/api/v2/custom-fields/{end}/authorized-values", headers=headers)
    both = [
        {"customFieldId": cost, "type": "string", "value": "CC-12"},
        {"customFieldId": end, "type": "date", "value": "2027-06-30"},
    ]
    raw.put(values, json={"customValues": both}, headers=headers)
    raw.get(values, headers=headers)
    bad = [{"customFieldId": cost, "type": "string", "value": "CC-99"}]
    raw.put(values, json={"customValues": bad}, headers=headers)
    raw.put(values, json={"customValues": [both[0], both[0]]}, headers=headers)
    raw.put(values, json={"customValues": [{**both[1], "type": "string"}]}, headers=headers)
    raw.put(
        f"/api/v2/users/{UNKNOWN_ID}/custom-fields/values",
        json={"customValues": []},
        headers=headers,
    )
    raw.get(f"/api/v2/custom-fields/{UNKNOWN_ID}/authorized-values", headers=headers)
    sim.scopes.discard("customFields:read")
    raw.get("/api/v2/custom-fields", headers=headers)

    assert transport.problems == []
    assert {
        ("GET /api/v2/custom-fields", 200),
        ("GET /api/v2/custom-fields", 403),
        ("GET /api/v2/custom-fields/{customFieldId}/authorized-values", 200),
        ("GET /api/v2/custom-fields/{customFieldId}/authorized-values", 404),
        ("GET /api/v2/users/{userId}/custom-fields/values", 200),
        ("PUT /api/v2/users/{userId}/custom-fields/values", 200),
        ("PUT /api/v2/users/{userId}/custom-fields/values", 400),
        ("PUT /api/v2/users/{userId}/custom-fields/values", 404),
    } <= transport.outcomes()


CUSTOM_FIELD_OPERATIONS = {
    "GET /api/v2/custom-fields",
    "GET /api/v2/custom-fields/{customFieldId}/authorized-values",
    "GET /api/v2/users/{userId}/custom-fields/values",
    "PUT /api/v2/users/{userId}/custom-fields/values",
}


def test_client_custom_field_operations_send_and_receive_documented_messages(
    client, sim, transport
):
    cost = sim.add_custom_field("Cost center", "string", authorized_values=["CC-12"])
    end = sim.add_custom_field("Contract end", "date")
    user, _ = _create(client, sim, "ada@acme.example")
    user_id = user.learning_user_id

    assert {f["_id"] for f in client.list_custom_fields()} == {cost, end}
    assert client.list_authorized_values(cost) == ["CC-12"]
    client.replace_custom_values(
        user_id,
        [
            {"customFieldId": cost, "type": "string", "value": "CC-12"},
            {"customFieldId": end, "type": "date", "value": "2027-06-30"},
        ],
    )
    assert len(client.list_custom_values(user_id)) == 2
    with pytest.raises(ApiRejected) as raised:
        client.replace_custom_values(
            user_id, [{"customFieldId": cost, "type": "string", "value": "CC-99"}]
        )

    assert raised.value.code == "unauthorizedValue"
    assert transport.problems == []
    assert transport.operations() >= CUSTOM_FIELD_OPERATIONS


def test_passes_with_custom_fields_exchange_only_documented_messages(tmp_path):
    rules = [
        {"name": "Cost center", "from": "work.custom.field_1", "map": {"A": "CC-12"}},
        {"name": "Contract end", "from": "work.custom.field_2"},
    ]
    world = World(tmp_path, size=12, RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(rules))
    world.learning.add_custom_field("Cost center", "string", authorized_values=["CC-12"])
    world.learning.add_custom_field("Contract end", "date")
    for hibob_id in world.hibob.records:
        world.hibob.update_employee(
            hibob_id, **{"work.custom.field_1": "A", "work.custom.field_2": "2027-06-30"}
        )
    learning = ValidatingTransport(world.learning.handle, load_spec("learning"))
    hibob = ValidatingTransport(world.hibob.handle, load_spec("hibob"))
    world.services = build_pass_context(
        world.settings, hibob_transport=hibob, learning_transport=learning, store=world.store
    )

    world.sync("full")
    edited = world.user_of(world.active_employees()[0])["_id"]
    world.learning.set_custom_value(
        edited, next(iter(world.learning.custom_values_of(edited))), "x"
    )
    world.sync("full")

    assert learning.problems == [] and hibob.problems == []
    assert learning.operations() >= CUSTOM_FIELD_OPERATIONS
