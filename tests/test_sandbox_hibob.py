import base64
import datetime
import hashlib
import hmac
import json

import httpx
import pytest

from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator, ping_bodies, sign
from reconciler.sandbox.server import serve
from tests.support import FakeClock

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
    "work.manager",
    "work.startDate",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "employee.lastDayOfWork",
]


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def sim(clock):
    return HibobSimulator(
        generate_company(60, seed=7, today=TODAY), clock=clock, sleep=lambda seconds: None
    )


@pytest.fixture
def client(sim):
    with httpx.Client(
        transport=httpx.MockTransport(sim.handle),
        base_url="http://hibob.test/v1",
        auth=("sandbox-user", "sandbox-token"),
    ) as c:
        yield c


def _search(client, **body):
    response = client.post("/people/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()["employees"]


def _ids(employees):
    return {e["id"] for e in employees}


def _with_status(sim, lifecycle):
    return next(r for r in sim.records.values() if r["internal.lifecycleStatus"] == lifecycle)


# ---- auth, rate limits, WAF, faults ---------------------------------------------------------


def test_bad_credentials_get_401_with_empty_body_and_rate_limit_headers(sim):
    with httpx.Client(
        transport=httpx.MockTransport(sim.handle),
        base_url="http://hibob.test/v1",
        auth=("sandbox-user", "wrong"),
    ) as wrong:
        response = wrong.post("/people/search", json={})
    assert response.status_code == 401
    assert response.content == b""
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
        response.headers
    )


def test_the_51st_search_in_a_minute_gets_429_until_the_window_resets(client, clock):
    for _ in range(50):
        assert client.post("/people/search", json={"fields": ["root.id"]}).status_code == 200
    refused = client.post("/people/search", json={"fields": ["root.id"]})
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == "50"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    reset = int(refused.headers["X-RateLimit-Reset"])
    assert reset == clock.now + 60
    assert set(refused.json()) == {"key", "error"}
    clock.now = reset
    again = client.post("/people/search", json={"fields": ["root.id"]})
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "49"


def test_single_reads_have_their_own_quota_and_the_limits_are_knobs(sim, client):
    sim.search_limit_per_minute = 1
    sim.read_limit_per_minute = 2
    hibob_id = sim.ceo_id
    assert client.post("/people/search", json={}).status_code == 200
    assert client.post("/people/search", json={}).status_code == 429
    assert client.post(f"/people/{hibob_id}", json={}).status_code == 200
    assert client.post(f"/people/{hibob_id}", json={}).status_code == 200
    assert client.post(f"/people/{hibob_id}", json={}).status_code == 429


def test_fifty_401s_within_ten_seconds_block_that_auth_header_for_five_minutes(sim, clock):
    transport = httpx.MockTransport(sim.handle)
    with (
        httpx.Client(
            transport=transport, base_url="http://hibob.test/v1", auth=("sandbox-user", "wrong")
        ) as wrong,
        httpx.Client(
            transport=transport,
            base_url="http://hibob.test/v1",
            auth=("sandbox-user", "sandbox-token"),
        ) as right,
    ):
        statuses = [wrong.post("/people/search", json={}).status_code for _ in range(51)]
        assert statuses[:50] == [401] * 50 and statuses[50] == 403
        assert right.post("/people/search", json={}).status_code == 200
        clock.now += 301
        assert wrong.post("/people/search", json={}).status_code == 401


def test_fault_knobs_fail_and_drop_requests_and_the_log_counts_them(sim, client):
    sim.faults.fail_next(1, status=503)
    assert client.post("/people/search", json={}).status_code == 503
    sim.faults.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/people/search", json={})
    assert client.post("/people/search", json={}).status_code == 200
    assert sim.requests == [
        ("POST", "/v1/people/search", 503),
        ("POST", "/v1/people/search", 0),
        ("POST", "/v1/people/search", 200),
    ]


def test_a_wrong_path_answers_200_with_an_html_page(client):
    response = client.get("/people/123/variables")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


# ---- search request rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        [],
        {},
        None,
        [{"fieldPath": "root.id", "operator": "equals", "values": ["1"]}] * 2,
        [{"fieldPath": "work.department", "operator": "equals", "values": ["1"]}],
        [{"fieldPath": "root.id", "operator": "contains", "values": ["1"]}],
        [{"fieldPath": "root.id", "operator": "equals", "values": []}],
        [{"fieldPath": "root.id", "operator": "equals", "values": "1"}],
    ],
)
def test_filters_other_than_one_id_or_email_equals_filter_are_rejected(client, filters):
    response = client.post("/people/search", json={"filters": filters})
    assert response.status_code == 400
    assert set(response.json()) == {"key", "error"}


def test_filter_by_id_returns_only_those_employees(sim, client):
    wanted = list(sim.records)[3:6]
    found = _search(
        client,
        fields=["root.id"],
        filters=[{"fieldPath": "root.id", "operator": "equals", "values": wanted}],
    )
    assert _ids(found) == set(wanted)


def test_filter_by_email_matches_case_insensitively(sim, client):
    record = list(sim.records.values())[4]
    shouted = record["root.email"].upper()
    found = _search(
        client,
        fields=["root.id"],
        filters=[{"fieldPath": "root.email", "operator": "equals", "values": [shouted]}],
    )
    assert _ids(found) == {record["root.id"]}


def test_more_than_400_fields_is_rejected_and_400_are_accepted(client):
    assert client.post("/people/search", json={"fields": ["root.id"] * 401}).status_code == 400
    assert client.post("/people/search", json={"fields": ["root.id"] * 400}).status_code == 200


def test_a_body_that_is_not_a_json_object_is_rejected(client):
    assert client.post("/people/search", content=b"[1]").status_code == 400
    assert client.post("/people/search", content=b"{nope").status_code == 400
    assert client.post("/people/search", json={"showInactive": "yes"}).status_code == 400


def test_search_hides_inactive_people_unless_show_inactive(sim, client):
    active = {i for i, r in sim.records.items() if r["internal.status"] == "Active"}
    assert 0 < len(active) < len(sim.records)
    assert _ids(_search(client, fields=["root.id"])) == active
    assert _ids(_search(client, fields=["root.id"], showInactive=True)) == set(sim.records)


def test_search_without_fields_returns_the_default_categories_but_no_lifecycle_fields(client):
    employee = _search(client)[0]
    assert {"id", "email", "work"} <= set(employee)
    assert "internal" not in employee and "employee" not in employee
    assert "/work/department" in employee


# ---- response layout ------------------------------------------------------------------------


def test_slash_keys_appear_only_for_non_null_values_while_nested_objects_keep_nulls(sim, client):
    ceo = _search(
        client,
        fields=FIELDS,
        filters=[{"fieldPath": "root.id", "operator": "equals", "values": [sim.ceo_id]}],
    )[0]
    assert ceo["work"]["reportsTo"] is None and ceo["internal"]["terminationDate"] is None
    assert "/work/reportsTo" not in ceo and "/internal/terminationDate" not in ceo
    assert ceo["/root/id"] == {"value": sim.ceo_id} and ceo["id"] == sim.ceo_id
    assert ceo["/work/startDate"] == {"value": ceo["work"]["startDate"]}


def test_machine_values_are_list_item_ids_iso_dates_and_manager_references(sim, client):
    record = list(sim.records.values())[7]
    manager = sim.records[record["work.reportsTo"]]
    employee = client.post(f"/people/{record['root.id']}", json={"fields": FIELDS}).json()
    assert employee["work"]["department"] == record["work.department"]
    assert employee["work"]["department"].isdigit()
    assert isinstance(employee["work"]["siteId"], int)  # a number, as in the spec's example
    assert employee["work"]["startDate"] == record["work.startDate"]
    assert employee["work"]["manager"] == manager["root.id"]
    assert employee["work"]["reportsTo"] == {
        "id": manager["root.id"],
        "firstName": manager["root.firstName"],
        "surname": manager["root.surname"],
        "email": manager["root.email"],
        "displayName": manager["root.displayName"],
    }
    assert employee["internal"]["lifecycleStatus"] == "employed"
    assert "humanReadable" not in employee


def test_append_adds_labels_for_non_null_fields_with_display_dates(sim, client):
    record = list(sim.records.values())[7]
    employee = client.post(
        f"/people/{record['root.id']}", json={"fields": FIELDS, "humanReadable": "APPEND"}
    ).json()
    human = employee["humanReadable"]
    department = next(
        i["name"] for i in sim.lists["department"] if i["id"] == record["work.department"]
    )
    assert employee["work"]["department"] == record["work.department"]
    assert human["work"]["department"] == department
    assert human["internal"]["lifecycleStatus"] == "Employed"
    assert human["email"] == record["root.email"]
    start = datetime.date.fromisoformat(record["work.startDate"])
    assert human["work"]["startDate"] == start.strftime("%d/%m/%Y")
    assert "terminationDate" not in human["internal"]


def test_replace_gives_labels_instead_of_machine_values(sim, client):
    record = list(sim.records.values())[7]
    manager = sim.records[record["work.reportsTo"]]
    employee = client.post(
        f"/people/{record['root.id']}", json={"fields": FIELDS, "humanReadable": "REPLACE"}
    ).json()
    assert not employee["work"]["department"].isdigit()
    assert employee["/work/department"] == {"value": employee["work"]["department"]}
    assert employee["work"]["reportsTo"] == manager["root.displayName"]
    assert employee["internal"]["lifecycleStatus"] == "Employed"
    assert "humanReadable" not in employee


def test_a_deleted_manager_renders_as_null_reports_to_without_a_label(sim, client):
    record = list(sim.records.values())[30]
    sim.delete_employee(record["work.reportsTo"])
    employee = client.post(
        f"/people/{record['root.id']}", json={"fields": FIELDS, "humanReadable": "APPEND"}
    ).json()
    assert employee["work"]["reportsTo"] is None and "/work/reportsTo" not in employee
    assert "reportsTo" not in employee["humanReadable"]["work"]


def test_an_invalid_human_readable_value_is_treated_as_machine_only(sim, client):
    employee = client.post(
        f"/people/{sim.ceo_id}", json={"fields": FIELDS, "humanReadable": "replace"}
    ).json()
    assert employee["work"]["department"].isdigit()
    assert "humanReadable" not in employee


# ---- permissions: silent omission -----------------------------------------------------------


def test_unknown_and_hidden_fields_are_silently_omitted(sim, client):
    sim.hidden_fields = {"internal.lifecycleStatus"}
    employee = _search(
        client,
        fields=["root.id", "internal.lifecycleStatus", "internal.status", "work.noSuchField"],
    )[0]
    assert employee["internal"] == {"status": "Active"}
    assert "/internal/lifecycleStatus" not in employee
    assert "noSuchField" not in employee.get("work", {})


def test_hiding_the_lifecycle_category_drops_every_internal_field(sim, client):
    sim.hide_category("lifecycle")
    employee = _search(client, fields=FIELDS)[0]
    assert "internal" not in employee
    assert not any(key.startswith("/internal/") for key in employee)
    assert "work" in employee


def test_people_outside_the_access_filter_are_silently_absent(sim, client):
    sim.access_filter = lambda record: record["internal.lifecycleStatus"] == "employed"
    leaver = _with_status(sim, "terminated")
    found = _search(client, fields=["root.id", "internal.lifecycleStatus"], showInactive=True)
    assert {e["internal"]["lifecycleStatus"] for e in found} == {"employed"}
    assert client.post(f"/people/{leaver['root.id']}", json={}).status_code == 404


# ---- single read and named lists ------------------------------------------------------------


def test_read_one_by_id_returns_one_employee_object_without_a_wrapper(sim, client):
    response = client.post(f"/people/{sim.ceo_id}", json={"fields": ["root.id", "root.email"]})
    assert response.status_code == 200
    assert response.json() == {
        "id": sim.ceo_id,
        "/root/id": {"value": sim.ceo_id},
        "email": sim.records[sim.ceo_id]["root.email"],
        "/root/email": {"value": sim.records[sim.ceo_id]["root.email"]},
    }


def test_read_one_by_email_is_case_insensitive_and_returns_inactive_people(sim, client):
    leaver = _with_status(sim, "terminated")
    response = client.post(
        f"/people/{leaver['root.email'].upper()}", json={"fields": ["root.id", "internal.status"]}
    )
    assert response.status_code == 200
    assert response.json()["id"] == leaver["root.id"]
    assert response.json()["internal"]["status"] == "Inactive"


def test_read_one_of_an_unknown_employee_is_404(client):
    assert client.post("/people/1234567890123456789", json={}).status_code == 404
    assert client.post("/people/nobody@acme.example", json={}).status_code == 404


def test_named_lists_are_case_sensitive_and_hide_archived_items_by_default(sim, client):
    listed = client.get("/company/named-lists/department").json()
    assert listed["name"] == "department"
    assert {"id", "value", "name", "archived", "children"} == set(listed["items"][0])
    everything = client.get(
        "/company/named-lists/department", params={"includeArchived": "true"}
    ).json()
    assert len(everything["items"]) == len(listed["items"]) + 1
    missing = client.get("/company/named-lists/Department")
    assert missing.status_code == 404 and missing.content == b""


# ---- HR changes -----------------------------------------------------------------------------


def test_add_employee_fills_defaults_and_resolves_list_labels(sim, client):
    hibob_id = sim.add_employee(
        first_name="Zoë",
        surname="Ørsted",
        department="Sales",
        site="Lisbon",
        **{"work.title": "Chief Happiness Officer"},
    )
    employee = client.post(
        f"/people/{hibob_id}", json={"fields": FIELDS, "humanReadable": "APPEND"}
    ).json()
    assert employee["email"] == "zoe.orsted@acme.example"
    assert employee["displayName"] == "Zoë Ørsted"
    assert employee["humanReadable"]["work"]["department"] == "Sales"
    assert employee["humanReadable"]["work"]["title"] == "Chief Happiness Officer"
    assert employee["work"]["title"].isdigit()
    assert employee["work"]["site"] == "Lisbon" and isinstance(employee["work"]["siteId"], int)
    assert employee["internal"] == {
        "status": "Active",
        "lifecycleStatus": "employed",
        "terminationDate": None,
    }
    assert employee["work"]["manager"] == sim.ceo_id


def test_a_future_hire_is_inactive_until_set_today_reaches_the_start_date(sim, client):
    start = TODAY + datetime.timedelta(days=10)
    hibob_id = sim.add_employee(start_date=start)
    assert hibob_id not in _ids(_search(client, fields=["root.id"]))
    assert sim.records[hibob_id]["internal.lifecycleStatus"] == "hired"
    sim.set_today(start)
    assert hibob_id in _ids(_search(client, fields=["root.id"]))
    assert sim.records[hibob_id]["internal.lifecycleStatus"] == "employed"


def test_terminate_in_the_past_makes_inactive_and_in_the_future_waits(sim):
    first, second = list(sim.records)[10:12]
    sim.terminate(first, on=TODAY)
    assert sim.records[first]["internal.status"] == "Inactive"
    later = TODAY + datetime.timedelta(days=30)
    sim.terminate(second, on=later, last_day=TODAY + datetime.timedelta(days=5))
    assert sim.records[second]["internal.lifecycleStatus"] == "garden leave"
    assert sim.records[second]["internal.status"] == "Active"
    sim.set_today(later)
    assert sim.records[second]["internal.lifecycleStatus"] == "terminated"
    assert sim.records[second]["internal.status"] == "Inactive"
    sim.rehire(second)
    assert sim.records[second]["internal.status"] == "Active"
    assert sim.records[second]["internal.terminationDate"] is None


def test_leave_without_access_hides_from_default_search_until_it_ends(sim, client):
    hibob_id = list(sim.records)[12]
    sim.start_leave(hibob_id, keeps_access=False)
    assert hibob_id not in _ids(_search(client, fields=["root.id"]))
    sim.end_leave(hibob_id)
    assert hibob_id in _ids(_search(client, fields=["root.id"]))


def test_update_employee_takes_field_ids_and_labels(sim, client):
    hibob_id = list(sim.records)[13]
    sim.update_employee(hibob_id, **{"root.email": "new@acme.example", "work.siteId": "Paris"})
    employee = client.post("/people/NEW@acme.example", json={"fields": FIELDS}).json()
    assert employee["id"] == hibob_id
    assert employee["work"]["site"] == "Paris"
    assert employee["work"]["siteId"] == next(
        i["id"] for i in sim.lists["site"] if i["name"] == "Paris"
    )


def test_deleted_employees_disappear_from_search_and_single_reads(sim, client):
    hibob_id = list(sim.records)[14]
    sim.delete_employee(hibob_id)
    assert hibob_id not in _ids(_search(client, fields=["root.id"], showInactive=True))
    assert client.post(f"/people/{hibob_id}", json={}).status_code == 404


def test_stale_reads_show_the_old_value_for_the_configured_seconds(sim, client, clock):
    sim.stale_read_seconds = 20
    hibob_id = list(sim.records)[15]
    old = sim.records[hibob_id]["root.surname"]
    sim.update_employee(hibob_id, surname="Changed")
    body = {"fields": ["root.surname"]}
    assert client.post(f"/people/{hibob_id}", json=body).json()["surname"] == old
    clock.now += 21
    assert client.post(f"/people/{hibob_id}", json=body).json()["surname"] == "Changed"


# ---- webhooks -------------------------------------------------------------------------------


def test_webhook_signature_is_base64_hmac_sha512_of_the_raw_body(sim):
    hibob_id = sim.ceo_id
    body, headers = sim.make_webhook(
        "employee.updated",
        hibob_id,
        "s3cret",
        field_updates=["work.title"],
        triggered_at=datetime.datetime(2026, 3, 16, 9, 30, 1, 5),
    )
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha512).digest()).decode()
    assert headers["Bob-Signature"] == expected == sign(body, "s3cret")
    assert headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert event == {
        "companyId": sim.company_id,
        "type": "employee.updated",
        "triggeredBy": "system",
        "triggeredAt": "2026-03-16T09:30:01.000005",
        "version": "v2",
        "data": {"employeeId": hibob_id, "fieldUpdates": ["work.title"]},
    }


def test_the_deleted_event_keeps_the_employee_email(sim):
    hibob_id = list(sim.records)[16]
    email = sim.records[hibob_id]["root.email"]
    sim.delete_employee(hibob_id)
    body, _ = sim.make_webhook("employee.deleted", hibob_id, "s3cret")
    assert json.loads(body)["data"] == {"employeeId": hibob_id, "email": email}


def test_ping_bodies_are_plain_text_then_json():
    assert ping_bodies() == [b"Ping test", b'{"text":"Ping test"}']


def test_deliver_webhook_refuses_hosts_other_than_loopback(sim):
    with pytest.raises(ValueError):
        sim.deliver_webhook("http://example.com/hook", "employee.created", sim.ceo_id, "x")


def test_deliver_webhook_posts_a_signed_event_to_a_loopback_receiver(sim):
    received = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    with serve(receiver) as server:
        response = sim.deliver_webhook(
            f"{server.url}/hooks/bob", "employee.joined", sim.ceo_id, "s3cret"
        )
    assert response.status_code == 200
    assert received[0].headers["Bob-Signature"] == sign(received[0].content, "s3cret")
    assert json.loads(received[0].content)["type"] == "employee.joined"


def test_the_served_simulator_answers_a_search_over_loopback_http(sim):
    with (
        serve(sim.handle) as server,
        httpx.Client(
            base_url=f"{server.url}/v1", auth=("sandbox-user", "sandbox-token"), trust_env=False
        ) as real,
    ):
        response = real.post("/people/search", json={"fields": ["root.id"]})
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "50"
    assert {e["id"] for e in response.json()["employees"]} <= set(sim.records)


def test_field_metadata_lists_every_field_with_its_category_even_hidden_ones(sim, client):
    sim.hide_category("lifecycle")

    response = client.get("/company/people/fields")

    fields = {f["id"]: f for f in response.json()}
    assert response.status_code == 200
    assert fields["internal.status"]["categoryId"] == "lifecycle"
    assert fields["internal.status"]["categoryDisplayName"] == "Lifecycle"
    assert fields["internal.status"]["typeData"] == {"listId": "status"}
    assert fields["root.email"]["jsonPath"] == "email"
    assert fields["work.site"]["typeData"] == {}
