"""Contract tests for Hibob: HibobClient requests and HibobSimulator responses.

Every exchange runs through `ValidatingTransport`, which checks both halves against
../shared/specs/hibob-public-api.generated.yml; the module skips when that folder is absent.
"""

from __future__ import annotations

import datetime

import httpx
import pytest
from contract import ValidatingTransport, load_spec, require_specs, validate_exchange

from reconciler.clients.hibob import HibobClient
from reconciler.errors import ApiAuthFailed
from reconciler.sandbox.company import STANDARD_FIELDS, generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.settings_sections import HibobSettings
from tests.support import FakeClock

require_specs()

BASE_URL = "http://hibob.test/v1"
TODAY = datetime.date(2026, 3, 2)
AUTH = ("sandbox-user", "sandbox-token")
FIELDS = list(STANDARD_FIELDS)
USED_OPERATIONS = {
    "POST /people/search",
    "POST /people/{identifier}",
    "GET /company/named-lists/{listName}",
    "GET /company/people/fields",
}


@pytest.fixture(scope="module")
def spec():
    return load_spec("hibob")


@pytest.fixture
def clock():
    return FakeClock(1_770_000_000.0)


@pytest.fixture
def sim(clock):
    company = generate_company(40, seed=7, today=TODAY)
    return HibobSimulator(company, today=TODAY, clock=clock, sleep=clock.advance)


@pytest.fixture
def transport(sim, spec):
    return ValidatingTransport(sim.handle, spec)


@pytest.fixture
def client(transport, clock):
    settings = HibobSettings(base_url=BASE_URL, service_user_id=AUTH[0], service_user_token=AUTH[1])
    client = HibobClient(
        settings, transport=transport, sleep=clock.advance, clock=clock, wall_clock=clock
    )
    yield client
    client.close()


@pytest.fixture
def raw(transport):
    """A bare httpx client for hand-built requests, as the docs show them."""
    with httpx.Client(
        base_url=BASE_URL, transport=transport, auth=AUTH, headers={"accept": "application/json"}
    ) as raw:
        yield raw


def _someone(sim: HibobSimulator) -> dict:
    return next(r for r in sim.records.values() if r["root.email"] and r["work.reportsTo"])


# ---- hand-built documented requests against the simulator -----------------------------------


def test_documented_read_requests_get_documented_answers(raw, sim, transport):
    person = _someone(sim)
    search = {
        "fields": FIELDS,
        "showInactive": True,
        "humanReadable": "APPEND",
        "filters": [
            {"fieldPath": "root.email", "operator": "equals", "values": [person["root.email"]]}
        ],
    }
    found = raw.post("/people/search", json=search)
    everyone = raw.post("/people/search", json={})  # the default field set
    by_id = raw.post(f"/people/{person['root.id']}", json={"fields": FIELDS})
    by_mail = raw.post(
        f"/people/{person['root.email']}", json={"fields": FIELDS, "humanReadable": "REPLACE"}
    )
    departments = raw.get("/company/named-lists/department", params={"includeArchived": "true"})
    fields = raw.get("/company/people/fields")

    assert transport.problems == []
    assert [e["id"] for e in found.json()["employees"]] == [person["root.id"]]
    assert everyone.json()["employees"] and by_id.json()["id"] == person["root.id"]
    assert by_mail.status_code == 200 and departments.json()["items"]
    assert {f["id"] for f in fields.json()} >= set(FIELDS)
    assert transport.operations() == USED_OPERATIONS


def test_documented_error_answers_match_the_spec(raw, sim, transport):
    raw.post("/people/search", json={"fields": FIELDS, "filters": []})
    raw.post(
        "/people/search",
        json={"filters": [{"fieldPath": "work.department", "operator": "equals", "values": ["1"]}]},
    )
    raw.post("/people/0000000000000000001", json={"fields": FIELDS})
    raw.get("/company/named-lists/Department")
    raw.post("/people/search", json={}, auth=("sandbox-user", "wrong"))
    sim.search_limit_per_minute = 1
    raw.post("/people/search", json={"fields": FIELDS})
    raw.post("/people/search", json={"fields": FIELDS})

    assert transport.problems == []
    assert {status for _, status in transport.outcomes()} == {400, 401, 404, 429}


# ---- every client operation through the validating transport -------------------------------


def test_every_client_operation_sends_and_receives_documented_messages(client, sim, transport):
    person = _someone(sim)

    employees = client.search_employees(FIELDS)
    by_id = client.get_employee(person["root.id"], FIELDS)
    by_mail = client.get_employee(person["root.email"], FIELDS)
    missing = client.get_employee("0000000000000000001", FIELDS)
    departments = client.get_named_list("department")
    fields = {f["id"]: f for f in client.list_fields()}

    assert transport.problems == []
    assert fields["work.department"]["typeData"] == {"listId": "department"}
    assert {e.hibob_id for e in employees} == set(sim.records)
    assert by_id.hibob_id == by_mail.hibob_id == person["root.id"] and missing is None
    assert departments[person["work.department"]]
    assert transport.operations() == USED_OPERATIONS


def test_client_meets_bad_credentials_as_the_documented_401(sim, transport, clock):
    settings = HibobSettings(
        base_url=BASE_URL, service_user_id=AUTH[0], service_user_token="revoked"
    )
    client = HibobClient(
        settings, transport=transport, sleep=clock.advance, clock=clock, wall_clock=clock
    )

    with pytest.raises(ApiAuthFailed):
        client.search_employees(FIELDS)

    client.close()
    assert transport.problems == []
    assert transport.outcomes() == {("POST /people/search", 401)}


def test_client_waits_out_the_documented_429(client, sim, transport):
    sim.search_limit_per_minute = 1
    client.search_employees(FIELDS)

    assert client.search_employees(FIELDS)
    assert transport.problems == []
    assert ("POST /people/search", 429) in transport.outcomes()


# ---- the validator itself must be able to fail ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "sent", "status", "body", "expected"),
    [
        (
            "POST",
            "/people/search",
            {"fields": "root.id"},
            200,
            {"employees": []},
            "is not of type 'array'",
        ),
        ("POST", "/people/search", {}, 200, {"employees": {"id": "1"}}, "is not of type 'array'"),
        ("POST", "/people/search", {}, 200, {"employees": [{"id": 17}]}, "employees/0"),
        (
            "GET",
            "/company/named-lists/site",
            None,
            200,
            {"name": "site", "items": [{"id": "1", "archived": "no"}]},
            "is not of type 'boolean'",
        ),
        ("GET", "/people", None, 200, {"employees": []}, "not found"),
    ],
)
def test_validator_rejects_an_exchange_that_breaks_the_spec(
    spec, method, path, sent, status, body, expected
):
    request = httpx.Request(
        method,
        BASE_URL + path,
        json=sent,
        headers={"authorization": "Basic c2FuZGJveC11c2VyOnRva2Vu"},
    )

    with pytest.raises(AssertionError, match=expected):
        validate_exchange(spec, request, httpx.Response(status, json=body))


def test_validator_rejects_a_request_without_basic_credentials(spec):
    request = httpx.Request("POST", BASE_URL + "/people/search", json={})

    with pytest.raises(AssertionError, match="Basic"):
        validate_exchange(spec, request, httpx.Response(401))
