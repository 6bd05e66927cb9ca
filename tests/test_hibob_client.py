"""HibobClient against the Hibob simulator: parsing, unknown vs null, labels, throttling, faults."""

from __future__ import annotations

import datetime
import json

import httpx
import pytest
from pydantic import SecretStr

from reconciler.clients.hibob import HibobClient
from reconciler.errors import ApiAuthFailed, ApiRejected, ApiUnavailable
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.settings_sections import HibobSettings
from tests.support import FakeTime

TODAY = datetime.date(2026, 3, 16)
FIELDS = [
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.department",
    "work.title",
    "work.site",
    "work.siteId",
    "work.reportsTo",
    "work.startDate",
    "work.employeeIdInCompany",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "employee.lastDayOfWork",
]


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(1_800_000_000.0)


@pytest.fixture
def sim(fake: FakeTime) -> HibobSimulator:
    return HibobSimulator(generate_company(40, seed=3, today=TODAY), clock=fake, sleep=fake.sleep)


def make_client(sim, fake, *, token="sandbox-token", base_url="http://hibob.test/v1", seen=None):
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return sim.handle(request)

    settings = HibobSettings(
        base_url=base_url, service_user_id="sandbox-user", service_user_token=SecretStr(token)
    )
    return HibobClient(
        settings,
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
        wall_clock=fake,
    )


@pytest.fixture
def client(sim, fake) -> HibobClient:
    return make_client(sim, fake)


def by_id(employees):
    return {e.hibob_id: e for e in employees}


def test_search_returns_everyone_including_inactive_people_in_one_call(sim, fake):
    seen: list[httpx.Request] = []
    client = make_client(sim, fake, seen=seen)

    employees = client.search_employees(FIELDS)

    assert set(by_id(employees)) == set(sim.records)
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/v1/people/search")]
    body = json.loads(seen[0].content)
    assert body == {"fields": FIELDS, "showInactive": True, "humanReadable": "APPEND"}
    statuses = {e.value("internal.lifecycleStatus") for e in employees}
    assert {"employed", "terminated"} <= statuses


def test_values_stay_machine_values_and_labels_come_from_append(client, sim):
    employees = by_id(client.search_employees(FIELDS))
    record = next(r for r in sim.records.values() if r["work.reportsTo"])
    employee = employees[record["root.id"]]
    departments = {item["id"]: item["name"] for item in sim.lists["department"]}
    manager = sim.records[record["work.reportsTo"]]

    assert employee.value("work.department") == record["work.department"]
    assert employee.label("work.department") == departments[record["work.department"]]
    assert employee.value("work.reportsTo") == manager["root.id"]
    assert employee.label("work.reportsTo") == manager["root.displayName"]
    assert employee.email == record["root.email"].strip().lower()
    assert employee.value("work.employeeIdInCompany") == record["work.employeeIdInCompany"]


def test_dates_are_never_taken_from_the_human_readable_form(client, sim):
    employees = by_id(client.search_employees(FIELDS))
    record = next(iter(sim.records.values()))
    employee = employees[record["root.id"]]

    assert employee.value("work.startDate") == record["work.startDate"]
    assert employee.label("work.startDate") == record["work.startDate"]
    assert "work.startDate" not in employee.labels


def test_hidden_fields_are_unknown_while_returned_nulls_are_present_as_none(client, sim):
    sim.hide_category("lifecycle")
    sim.hidden_fields.add("work.title")
    ceo = sim.records[sim.ceo_id]
    assert ceo["work.reportsTo"] is None and ceo["employee.lastDayOfWork"] is None

    employee = by_id(client.search_employees(FIELDS + ["work.custom.field_404"]))[sim.ceo_id]

    for hidden in (
        "work.title",
        "internal.status",
        "internal.terminationDate",
        "work.custom.field_404",
    ):
        assert not employee.has(hidden)
    assert employee.has("work.reportsTo") and employee.value("work.reportsTo") is None
    assert employee.has("employee.lastDayOfWork")
    assert employee.value("employee.lastDayOfWork") is None


def test_root_id_is_always_requested(sim, fake):
    seen: list[httpx.Request] = []
    client = make_client(sim, fake, seen=seen)

    employees = client.search_employees(["root.email"])

    assert json.loads(seen[0].content)["fields"] == ["root.id", "root.email"]
    assert all(e.hibob_id == e.value("root.id") for e in employees)


def test_get_employee_by_email_and_by_id(client, sim):
    record = next(r for r in sim.records.values() if r["root.email"])

    by_mail = client.get_employee(record["root.email"].upper(), FIELDS)
    by_backend_id = client.get_employee(record["root.id"], FIELDS)

    assert by_mail is not None and by_mail.hibob_id == record["root.id"]
    assert by_backend_id == by_mail
    assert by_mail.label("work.department") is not None


def test_get_employee_returns_none_for_an_unknown_person(client, sim):
    assert client.get_employee("3999999999999999999", FIELDS) is None
    assert client.get_employee("nobody@acme.example", FIELDS) is None
    assert client.stats.errors == 0


def test_get_named_list_flattens_hierarchies(client, sim):
    parent = sim.lists["department"][1]
    parent["children"] = [
        {"id": "777", "value": "Platform", "name": "Platform", "archived": False, "children": []}
    ]

    labels = client.get_named_list("department")

    assert labels[parent["id"]] == parent["name"]
    assert labels["777"] == "Platform"


def test_a_wrong_token_is_reported_at_once_without_the_secret(sim, fake):
    client = make_client(sim, fake, token="wrong-token-123")

    with pytest.raises(ApiAuthFailed) as caught:
        client.search_employees(FIELDS)

    assert len(sim.requests) == 1
    message = str(caught.value)
    assert "hibob.service_user_token" in message
    assert "wrong-token-123" not in message and "Basic" not in message


def test_a_wrong_base_path_answering_html_is_a_clear_error(sim, fake):
    client = make_client(sim, fake, base_url="http://hibob.test/api")

    with pytest.raises(ApiRejected) as caught:
        client.search_employees(FIELDS)

    assert "text/html" in str(caught.value) and "base URL" in str(caught.value)


def test_a_429_waits_for_the_x_ratelimit_reset_and_then_succeeds(client, sim, fake):
    sim.search_limit_per_minute = 2
    client.search_employees(FIELDS)
    client.search_employees(FIELDS)
    started = fake.now

    client.search_employees(FIELDS)

    statuses = [status for _, _, status in sim.requests]
    assert statuses == [200, 200, 429, 200]
    assert fake.sleeps[-1] == pytest.approx(60.0, abs=1.0)
    assert fake.now - started == pytest.approx(60.0, abs=1.0)
    assert client.stats.rate_limited == 1


def test_a_run_of_503s_ends_in_success(client, sim, fake):
    sim.faults.fail_next(3, 503)

    employees = client.search_employees(FIELDS)

    assert len(employees) == len(sim.records)
    assert [s for _, _, s in sim.requests] == [503, 503, 503, 200]
    assert client.stats.retries == 3
    # Jittered backoff (base 0.5 s) plus the search throttle: well under the 30 s cap each.
    assert max(fake.sleeps) <= 30 and sum(fake.sleeps) <= 0.5 + 1 + 2 + 60 / 45


def test_a_dropped_connection_is_retried(client, sim):
    sim.faults.drop_next(1)

    assert len(client.search_employees(FIELDS)) == len(sim.records)
    assert [s for _, _, s in sim.requests] == [0, 200]


def test_searches_are_throttled_below_fifty_per_minute(client, sim, fake):
    started = fake.now
    for _ in range(60):
        client.search_employees(["root.id"])

    assert all(status == 200 for _, _, status in sim.requests)
    elapsed = fake.now - started
    assert elapsed >= (60 - 3) * 60 / 45 - 1e-6  # a burst of 3, then 45 per minute


def rewriting_client(sim, fake, rewrite):
    """A client whose search answers pass through `rewrite(list of employee dicts)`."""

    def handle(request: httpx.Request) -> httpx.Response:
        response = sim.handle(request)
        if request.url.path != "/v1/people/search":
            return response
        payload = json.loads(response.read())
        rewrite(payload["employees"])
        return httpx.Response(200, json=payload)

    settings = HibobSettings(
        base_url="http://hibob.test/v1",
        service_user_id="sandbox-user",
        service_user_token=SecretStr("sandbox-token"),
    )
    return HibobClient(
        settings,
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
        wall_clock=fake,
    )


def test_search_gives_each_employee_exactly_as_a_read_by_id_does(client, sim):
    sim.hidden_fields.add("work.title")
    fields = FIELDS + ["work.custom.field_404"]

    searched = by_id(client.search_employees(fields))

    assert searched and all(
        client.get_employee(hibob_id, fields) == employee for hibob_id, employee in searched.items()
    )


def test_a_field_given_only_in_the_slash_layout_is_still_read(sim, fake):
    def drop_nested_title(employees):
        for employee in employees:
            employee.get("work", {}).pop("title", None)

    expected = by_id(make_client(sim, fake).search_employees(FIELDS))
    employees = by_id(rewriting_client(sim, fake, drop_nested_title).search_employees(FIELDS))

    assert employees == expected
    assert any(e.value("work.title") for e in employees.values())


def test_a_record_of_an_unexpected_shape_makes_its_fields_unknown_not_the_search_fail(sim, fake):
    odd = sorted(sim.records)[0]

    def spoil(employees):
        for employee in employees:
            if employee["id"] == odd:
                employee["work"] = "not an object"
                for key in [k for k in employee if k.startswith("/work/")]:
                    del employee[key]

    employees = by_id(rewriting_client(sim, fake, spoil).search_employees(FIELDS))

    assert len(employees) == len(sim.records)
    assert not employees[odd].has("work.department") and employees[odd].has("root.email")
    others = [e for h, e in employees.items() if h != odd]
    assert all(e.has("work.department") for e in others)


def test_a_search_answer_that_is_not_json_is_reported_as_such(sim, fake):
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b'{"employees": [', headers={"content-type": "application/json"}
        )

    settings = HibobSettings(
        base_url="http://hibob.test/v1",
        service_user_id="sandbox-user",
        service_user_token=SecretStr("sandbox-token"),
    )
    client = HibobClient(
        settings,
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
        wall_clock=fake,
    )

    with pytest.raises(ApiUnavailable, match="not valid JSON"):
        client.search_employees(FIELDS)
