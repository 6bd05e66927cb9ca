"""The 360Learning simulator's custom fields (api/360learning.md §4): definitions, authorized
values, per-user values, the replace-all PUT with its documented errors and scopes."""

from __future__ import annotations

import httpx
import pytest

from reconciler.sandbox.learning import LearningSimulator
from tests.test_sandbox_learning import client_for, error_code

UNKNOWN_ID = "0123456789abcdef01234567"


@pytest.fixture
def sim() -> LearningSimulator:
    return LearningSimulator(enforce_rate_limits=False, sleep=lambda _: None)


@pytest.fixture
def api(sim: LearningSimulator) -> httpx.Client:
    return client_for(sim)


def _values(api: httpx.Client, user_id: str) -> httpx.Response:
    return api.get(f"/api/v2/users/{user_id}/custom-fields/values")


def _put(api: httpx.Client, user_id: str, *items: dict) -> httpx.Response:
    return api.put(
        f"/api/v2/users/{user_id}/custom-fields/values", json={"customValues": list(items)}
    )


def test_definitions_are_listed_and_filtered_by_name_target_type_and_type(sim, api) -> None:
    cost = sim.add_custom_field("Cost center", "string", authorized_values=["CC-12", "CC-40"])
    end = sim.add_custom_field("Contract end", "date")
    sim.add_custom_field("Topic", "string", target_type="contents")

    listed = api.get("/api/v2/custom-fields").json()
    by_name = api.get("/api/v2/custom-fields", params={"name[eq]": "Cost center"}).json()
    users_dates = api.get(
        "/api/v2/custom-fields", params={"targetType[eq]": "users", "type[eq]": "date"}
    ).json()

    assert {f["name"] for f in listed} == {"Cost center", "Contract end", "Topic"}
    assert by_name == [
        {"_id": cost, "name": "Cost center", "targetType": "users", "type": "string"}
    ]
    assert [f["_id"] for f in users_dates] == [end]
    assert api.get(f"/api/v2/custom-fields/{cost}/authorized-values").json() == ["CC-12", "CC-40"]
    assert api.get(f"/api/v2/custom-fields/{end}/authorized-values").json() == []
    assert error_code(api.get(f"/api/v2/custom-fields/{UNKNOWN_ID}/authorized-values")) == (
        "customFieldNotFound"
    )


def test_the_put_replaces_the_whole_set_and_the_get_reads_it_back(sim, api) -> None:
    cost = sim.add_custom_field("Cost center", "string")
    end = sim.add_custom_field("Contract end", "date")
    user = sim.seed_user("ada@acme.example")
    sim.set_custom_value(user, cost, "CC-12")

    answer = _put(api, user, {"customFieldId": end, "type": "date", "value": "2027-06-30"})

    assert answer.status_code == 200
    # Replace-all: the cost center not sent is gone.
    assert sim.custom_values_of(user) == {end: "2027-06-30"}
    (held,) = _values(api, user).json()
    assert held["customFieldId"] == end and held["type"] == "date"
    assert held["value"].startswith("2027-06-30")  # Sim decision: read back as a date-time


@pytest.mark.parametrize(
    ("item", "status", "code"),
    [
        ({"customFieldId": "cost", "type": "string", "value": "CC-99"}, 400, "unauthorizedValue"),
        ({"customFieldId": "cost", "type": "date", "value": "2027-06-30"}, 400, "wrongTypeValue"),
        ({"customFieldId": "end", "type": "date", "value": "30/06/2027"}, 400, "wrongTypeValue"),
        ({"customFieldId": UNKNOWN_ID, "type": "string", "value": "x"}, 404, "customFieldNotFound"),
    ],
)
def test_a_refused_put_changes_nothing(sim, api, item, status, code) -> None:
    ids = {
        "cost": sim.add_custom_field("Cost center", "string", authorized_values=["CC-12"]),
        "end": sim.add_custom_field("Contract end", "date"),
    }
    user = sim.seed_user("ada@acme.example")
    sim.set_custom_value(user, ids["cost"], "CC-12")
    item = {**item, "customFieldId": ids.get(item["customFieldId"], item["customFieldId"])}

    answer = _put(api, user, item)

    assert (answer.status_code, error_code(answer)) == (status, code)
    assert sim.custom_values_of(user) == {ids["cost"]: "CC-12"}


def test_two_values_for_one_field_and_an_unknown_user_are_refused(sim, api) -> None:
    cost = sim.add_custom_field("Cost center", "string")
    user = sim.seed_user("ada@acme.example")
    twice = [{"customFieldId": cost, "type": "string", "value": v} for v in ("A", "B")]

    assert error_code(_put(api, user, *twice)) == "multipleValuesForSingleCustomField"
    assert error_code(_put(api, UNKNOWN_ID)) == "userNotFound"
    assert error_code(_values(api, UNKNOWN_ID)) == "userNotFound"


def test_custom_fields_need_their_documented_scopes(sim, api) -> None:
    cost = sim.add_custom_field("Cost center", "string")
    user = sim.seed_user("ada@acme.example")
    sim.scopes -= {"customFields:read", "users:write"}

    assert error_code(api.get("/api/v2/custom-fields")) == "invalid_scope"
    assert error_code(api.get(f"/api/v2/custom-fields/{cost}/authorized-values")) == (
        "invalid_scope"
    )
    assert error_code(_put(api, user)) == "invalid_scope"
    assert _values(api, user).status_code == 200  # users:read


def test_definitions_are_paginated_by_1000(sim, api) -> None:
    for number in range(1001):
        sim.add_custom_field(f"Field {number}", "string")

    first = api.get("/api/v2/custom-fields")
    second = api.get(first.links["next"]["url"])

    assert len(first.json()) == 1000 and len(second.json()) == 1
