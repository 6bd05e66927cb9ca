"""Custom fields (product §1.5, issue 16): `[[mapping.custom_fields]]` settings, the pure core's
desired values (table tests), and passes against both simulators."""

from __future__ import annotations

import json

import pytest

from reconciler.config import load_settings
from reconciler.core.custom_fields import (
    CustomFieldDefinition,
    compute_custom_values,
    custom_key,
    merge_custom_values,
    resolve_custom_fields,
)
from reconciler.core.desired import required_fields
from reconciler.core.models import Employee
from reconciler.errors import ConfigError

COST = CustomFieldDefinition("c" * 24, "Cost center", "string", ("CC-12", "CC-40"))
END = CustomFieldDefinition("d" * 24, "Contract end", "date")
NOTE = CustomFieldDefinition("e" * 24, "Note", "string")
DEFINITIONS = (COST, END, NOTE)
CC = "work.custom.field_1644932887286"
ENDS = "work.custom.field_1716448572063"


def settings_with(*rules: dict):
    return load_settings(
        environ={"RECONCILER_MAPPING__CUSTOM_FIELDS": json.dumps(list(rules))}, read_file=False
    )


def ada(**values) -> Employee:
    base = {"root.id": "7", CC: "CC 12", ENDS: "2027-06-30", "work.site": "Paris"}
    base.update(values)
    hidden = {k for k, v in base.items() if v == "<hidden>"}
    return Employee("7", values={k: v for k, v in base.items() if k not in hidden})


def values_for(employee: Employee, *rules: dict):
    resolved = resolve_custom_fields(settings_with(*rules), DEFINITIONS)
    assert resolved.problems == ()
    return compute_custom_values(employee, resolved)


CC_RULE = {"name": "Cost center", "from": CC, "map": {"CC 12": "CC-12", "CC12": "CC-12"}}


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        (CC_RULE, {}, "CC-12"),
        (
            {**CC_RULE, "from": "work.site", "map": {"London": "CC-12"}, "default": "CC-40"},
            {},
            "CC-40",
        ),
        ({"name": "Note", "template": "{work.site} office"}, {}, "Paris office"),
        ({"name": "Note", "value": "managed"}, {}, "managed"),
        ({"custom_field_id": "e" * 24, "from": "work.site"}, {}, "Paris"),
        ({"name": "Contract end", "from": ENDS}, {}, "2027-06-30"),
        ({"name": "Contract end", "from": ENDS}, {ENDS: "2027-06-30T00:00:00"}, "2027-06-30"),
        ({**CC_RULE, "empty": "clear"}, {CC: ""}, None),
        ({**CC_RULE, "map": {}, "default": "CC-40"}, {CC: "CC-40"}, "CC-40"),
    ],
)
def test_a_custom_field_rule_gives_its_value(rule, values, expected) -> None:
    key = custom_key(next(d for d in DEFINITIONS if d.name == rule.get("name", "Note")))
    mapped = values_for(ada(**values), rule)
    assert mapped.attributes == {key: expected}
    assert mapped.problems == ()


@pytest.mark.parametrize(
    ("rule", "values"),
    [
        (CC_RULE, {CC: "<hidden>"}),  # unknown: nothing written, nothing cleared
        (CC_RULE, {CC: ""}),  # empty under keep
        ({"name": "Note", "template": "{work.site} {work.nope}"}, {}),  # an unknown placeholder
    ],
)
def test_an_unknown_or_kept_custom_source_writes_and_clears_nothing(rule, values) -> None:
    mapped = values_for(ada(**values), rule)
    assert mapped.attributes == {} and mapped.problems == ()


@pytest.mark.parametrize(
    ("rule", "values", "said"),
    [
        ({**CC_RULE, "map": {}}, {CC: "CC-99"}, "not an authorized value"),
        (CC_RULE, {CC: "CC 99"}, "no entry in its map"),
        ({"name": "Contract end", "from": ENDS}, {ENDS: "30/06/2027"}, "not a date"),
    ],
)
def test_a_value_the_field_refuses_is_reported_and_never_sent(rule, values, said) -> None:
    mapped = values_for(ada(**values), rule)
    assert mapped.attributes == {}
    (problem,) = mapped.problems
    assert said in problem and "mapping.custom_fields" in problem


def test_a_create_only_custom_field_is_marked_so() -> None:
    mapped = values_for(ada(), {**CC_RULE, "on": "create"})
    assert mapped.create_only == {custom_key(COST)}


def test_names_and_ids_resolve_and_an_unknown_one_is_a_problem() -> None:
    settings = settings_with(
        CC_RULE, {"name": "Nope", "value": "x"}, {"custom_field_id": "f" * 24, "value": "x"}
    )
    resolved = resolve_custom_fields(settings, DEFINITIONS)
    assert [d.name for _, d in resolved.rules] == ["Cost center"]
    assert len(resolved.problems) == 2 and "Nope" in resolved.problems[0]


def test_the_replace_all_set_keeps_every_unmanaged_value() -> None:
    current = [
        {"customFieldId": NOTE.custom_field_id, "type": "string", "value": "by hand"},
        {"customFieldId": COST.custom_field_id, "type": "string", "value": "CC-40"},
        {"customFieldId": END.custom_field_id, "type": "date", "value": "2026-01-01T00:00:00Z"},
    ]
    managed = {custom_key(COST): "CC-12", custom_key(END): None}
    merged = merge_custom_values(current, managed, DEFINITIONS)
    assert sorted(merged, key=lambda v: v["customFieldId"]) == [
        {"customFieldId": COST.custom_field_id, "type": "string", "value": "CC-12"},
        {"customFieldId": NOTE.custom_field_id, "type": "string", "value": "by hand"},
    ]


def test_custom_field_sources_are_requested_from_hibob() -> None:
    settings = settings_with(CC_RULE, {"name": "Note", "template": "{work.custom.field_9}"})
    assert {CC, "work.custom.field_9"} <= set(required_fields(settings))


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"name": "Cost center", "from": CC, "value": "x"}, "custom_fields"),
        ({"name": "Cost center"}, "custom_fields"),
        ({"from": CC}, "name"),
        ({"name": "Cost center", "custom_field_id": "c" * 24, "from": CC}, "name"),
        ({"name": "Cost center", "from": CC, "empty": "erase"}, "empty"),
        ([{"name": "Cost center", "from": CC}, {"name": "Cost center", "value": "x"}], "Cost"),
        ({"custom_field_id": "not-an-id", "value": "x"}, "custom_field_id"),
    ],
)
def test_bad_custom_field_rules_are_one_line_errors_naming_the_key(rule, named) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(*(rule if isinstance(rule, list) else [rule]))
    assert "mapping.custom_fields" in str(caught.value) and named in str(caught.value)
    assert "\n" not in str(caught.value)


# -- through passes against both simulators ------------------------------------------------------
def custom_world(tmp_path, *rules: dict, **settings: str):
    from tests.support import World

    world = World(
        tmp_path, size=30, RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(list(rules)), **settings
    )
    sim = world.learning
    world.ids = {
        "cost": sim.add_custom_field("Cost center", "string", authorized_values=["CC-12", "CC-40"]),
        "end": sim.add_custom_field("Contract end", "date"),
        "badge": sim.add_custom_field("Badge", "string"),
    }
    for number, hibob_id in enumerate(sorted(world.hibob.records)):
        world.hibob.update_employee(
            hibob_id, **{CC: "CC 12" if number % 2 else "CC-40", ENDS: "2027-06-30"}
        )
    return world


RULES = (
    {
        "name": "Cost center",
        "from": CC,
        "map": {"CC 12": "CC-12", "CC12": "CC-12", "CC-40": "CC-40", "CC 99": "CC-99"},
    },
    {"name": "Contract end", "from": ENDS},
)


def held(world, hibob_id: str) -> dict[str, str]:
    names = {v: k for k, v in world.ids.items()}
    user = world.user_of(hibob_id)
    return {names[f]: v for f, v in world.learning.custom_values_of(user["_id"]).items()}


def test_string_and_date_custom_fields_are_written_and_an_unchanged_pass_calls_nothing(
    tmp_path,
) -> None:
    world = custom_world(tmp_path, *RULES)

    assert world.sync().outcome == "ok"
    one, two = world.active_employees()[:2]
    assert {held(world, one)["cost"], held(world, two)["cost"]} == {"CC-12", "CC-40"}
    assert held(world, one)["end"] == "2027-06-30"
    before = len(world.learning.requests)
    assert world.sync().plan.actions == ()
    assert len(world.learning.requests) == before  # 0 360Learning calls
    assert world.sync("full").plan.actions == ()
    assert world.learning_writes() == [] or all(
        r[0] == "GET" for r in world.learning.requests[before:]
    )


def test_a_custom_field_value_the_reconciler_does_not_manage_survives(tmp_path) -> None:
    world = custom_world(tmp_path, *RULES)
    world.sync()
    hibob_id = world.active_employees()[3]
    world.learning.set_custom_value(world.user_of(hibob_id)["_id"], world.ids["badge"], "B-7")

    world.hibob.update_employee(hibob_id, **{CC: "CC12", ENDS: "2028-01-31"})
    result = world.sync()

    assert result.outcome == "ok"
    assert held(world, hibob_id) == {"cost": "CC-12", "end": "2028-01-31", "badge": "B-7"}


def test_an_unauthorized_value_is_reported_on_the_employee_and_never_sent(tmp_path) -> None:
    world = custom_world(tmp_path, *RULES)
    hibob_id = world.active_employees()[4]
    world.hibob.update_employee(hibob_id, **{CC: "CC 99"})

    result = world.sync()

    assert result.outcome == "ok"
    reasons = [p.reason for p in result.plan.problems if p.hibob_id == hibob_id]
    assert any("not an authorized value" in r for r in reasons)
    assert not [r for r in world.learning.requests if r[2] == 400]
    assert held(world, hibob_id) == {"end": "2027-06-30"}  # the rest is written
    assert not world.store.get_entry(hibob_id).failures  # no quarantine
    assert hibob_id in {row.hibob_id for row in world.store.list_skipped()}


def test_drift_of_a_managed_custom_field_is_repaired_by_a_full_resync(tmp_path) -> None:
    world = custom_world(tmp_path, *RULES)
    world.sync()
    hibob_id = world.active_employees()[5]
    user_id = world.user_of(hibob_id)["_id"]
    wanted = held(world, hibob_id)["cost"]
    world.learning.set_custom_value(user_id, world.ids["cost"], "edited by hand")
    world.learning.set_custom_value(user_id, world.ids["badge"], "B-9")

    assert world.sync().plan.actions == ()  # incremental: trusts the snapshot
    repaired = world.sync("full")

    assert [a.hibob_id for a in repaired.plan.actions] == [hibob_id]
    assert repaired.plan.actions[0].reason == "differs from 360Learning (drift)"
    assert held(world, hibob_id) == {"cost": wanted, "end": "2027-06-30", "badge": "B-9"}
    assert world.sync("full").plan.actions == ()


def test_empty_clear_removes_a_custom_value_and_a_hidden_field_clears_nothing(tmp_path) -> None:
    world = custom_world(tmp_path, {**RULES[0], "empty": "clear"}, RULES[1])
    world.sync()
    cleared = world.active_employees()[6]
    world.hibob.update_employee(cleared, **{CC: None, ENDS: None})

    world.sync()

    assert held(world, cleared) == {"end": "2027-06-30"}  # cost cleared, end kept (keep)
    world.hibob.hidden_fields.add(CC)  # the service user lost the field's category
    for kind in ("incremental", "full"):
        assert world.sync(kind).plan.actions == ()
    assert all("cost" in held(world, h) for h in world.active_employees() if h != cleared)


def test_a_custom_field_that_does_not_resolve_is_reported_and_the_rest_is_written(
    tmp_path,
) -> None:
    world = custom_world(tmp_path, *RULES, {"name": "Nope", "value": "x"})
    result = world.sync()
    assert result.outcome == "ok"
    assert any("Nope" in p.reason for p in result.plan.problems)
    assert held(world, world.active_employees()[0])["end"] == "2027-06-30"


def test_a_custom_field_hibob_starts_answering_null_for_is_withheld_not_cleared(tmp_path) -> None:
    world = custom_world(tmp_path, {**RULES[0], "empty": "clear"}, RULES[1])
    world.sync("full")
    world.sync("full")  # the share of employees with each rule field filled is recorded
    world.hibob.hidden_as_null = True
    world.hibob.hidden_fields.add(CC)  # permission lost: Hibob answers null for everyone

    result = world.sync("full")

    assert result.plan.actions == ()
    assert any(CC in p.reason for p in result.plan.problems)
    assert all("cost" in held(world, h) for h in world.active_employees())


def test_hibob_returns_a_custom_field_only_when_it_is_requested(tmp_path) -> None:
    world = custom_world(tmp_path, *RULES)
    by_default = world.services.hibob.search_employees([])
    asked = world.services.hibob.search_employees(["root.id", CC])
    assert by_default and not any(e.has(CC) for e in by_default)
    assert all(e.has(CC) for e in asked)


def test_the_resync_cost_measure_counts_one_values_read_per_managed_user_and_no_write() -> None:
    from bench.custom_fields import measure

    measured = measure(120)

    assert measured["incremental"]["calls"] == 0  # unchanged: no 360Learning call
    assert measured["incremental"]["hibob_calls"] == 1  # one search
    full = measured["full"]
    reads = full["by_operation"]["GET /api/v2/users/{id}/custom-fields/values"]
    assert full["actions"] == 0 and 0 < reads <= 120
    assert not [op for op in full["by_operation"] if not op.startswith("GET")]


def test_a_user_gone_before_its_values_are_read_keeps_the_snapshot_and_the_pass_goes_on(
    tmp_path,
) -> None:
    import httpx

    world = custom_world(tmp_path, *RULES)
    world.sync()
    gone = world.user_of(world.active_employees()[2])["_id"]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(f"{gone}/custom-fields/values"):
            return httpx.Response(404, json={"error": {"code": "userNotFound", "message": "x"}})
        return world.learning.handle(request)

    world.route_learning_through(handler)
    result = world.sync("full")

    assert result.outcome == "ok" and result.plan.actions == ()


def test_an_adopted_account_gets_the_managed_values_and_keeps_its_own(tmp_path) -> None:
    world = custom_world(tmp_path, *RULES)
    hibob_id = world.active_employees()[1]
    mail = world.hibob.records[hibob_id]["root.email"].strip().lower()
    existing = world.learning.seed_user(mail, firstName="Made", lastName="ByHand")
    world.learning.set_custom_value(existing, world.ids["badge"], "B-1")
    world.learning.set_custom_value(existing, world.ids["cost"], "CC-40")

    result = world.sync()

    assert result.outcome == "ok"
    assert world.user_of(hibob_id)["_id"] == existing
    wanted = "CC-12" if world.hibob.records[hibob_id][CC] == "CC 12" else "CC-40"
    assert held(world, hibob_id) == {"cost": wanted, "end": "2027-06-30", "badge": "B-1"}
    assert world.sync().plan.actions == ()


def test_a_full_resync_reports_its_custom_field_reads_as_progress_for_the_eta(tmp_path) -> None:
    """A full resync with custom fields spends most of its time reading each user's values
    (one paced call each): those reads count as progress, so the ETA is shown while they run."""
    from reconciler.passes.apply import PassHooks

    world = custom_world(tmp_path, *RULES)
    world.sync()
    linked = sum(1 for h in world.active_employees() if world.user_of(h))
    updates: list[tuple[str, int, int | None]] = []
    world.sync("full", hooks=PassHooks(progress=lambda *update: updates.append(update)))

    planning = next(n for n, (phase, _, _) in enumerate(updates) if phase == "plan")
    reads = [(done, total) for phase, done, total in updates[planning:] if phase == "read"]
    assert reads, updates  # the users' values are read while the plan is made
    totals = {total for _, total in reads}
    assert len(totals) == 1 and next(iter(totals)) == linked
    assert [done for done, _ in reads] == list(range(1, linked + 1))  # each read as it lands
