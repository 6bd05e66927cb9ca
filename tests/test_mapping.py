"""Mapping rules (product §1.5, issue 16): sources, map and default, empty, on, and the
settings errors, from literals (pure) and through a pass against both simulators."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from reconciler.config import load_settings
from reconciler.core.mapping import compute_mapped, rule_sources
from reconciler.core.models import Employee
from reconciler.errors import ConfigError
from tests.support import World

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def settings_with(**rules: dict) -> object:
    return load_settings(environ={"RECONCILER_MAPPING__FIELDS": json.dumps(rules)}, read_file=False)


def ada(**values) -> Employee:
    base = {
        "root.id": "7",
        "root.firstName": "Ada",
        "root.surname": "Lovelace",
        "work.title": "t1",
        "work.site": "Paris",
        "work.department": "d1",
        "address.country": "France",
        "work.startDate": "2020-01-06",
    }
    base.update(values)
    labels = {"work.title": "Engineer", "work.department": "R&D"}
    hidden = {k for k, v in base.items() if v == "<hidden>"}
    return Employee(
        "7",
        values={k: v for k, v in base.items() if k not in hidden},
        labels={k: v for k, v in labels.items() if k not in hidden},
    )


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        ({"from": "work.department"}, {}, "R&D"),  # a list field gives its label
        ({"from": "work.startDate"}, {}, "2020-01-06"),  # a date as YYYY-MM-DD
        ({"template": "{work.site} / {work.department}"}, {}, "Paris / R&D"),
        ({"template": "{work.site} / {work.department}"}, {"work.site": None}, " / R&D"),
        ({"value": "ACME"}, {}, "ACME"),
        ({"from": "address.country", "map": {"France": "FR-1"}}, {}, "FR-1"),
        ({"from": "address.country", "map": {"Spain": "ES"}, "default": "XX"}, {}, "XX"),
        ({"from": "address.country", "default": "XX"}, {"address.country": None}, "XX"),
        ({"from": "address.country", "empty": "clear"}, {"address.country": ""}, None),
    ],
)
def test_a_rule_gives_its_value(rule, values, expected) -> None:
    mapped = compute_mapped(ada(**values), settings_with(organization=rule))
    assert mapped.attributes["organization"] == (expected.strip() if expected else expected)
    assert mapped.problems == ()


@pytest.mark.parametrize(
    ("rule", "values"),
    [
        ({"from": "address.country"}, {"address.country": "<hidden>"}),  # missing: unknown
        ({"from": "address.country", "empty": "clear"}, {"address.country": "<hidden>"}),
        ({"from": "address.country"}, {"address.country": None}),  # empty = keep
        ({"template": "{work.site} / {address.country}"}, {"address.country": "<hidden>"}),
        ({"from": "work.department"}, {"work.department": "<hidden>"}),
    ],
)
def test_an_unknown_or_kept_source_writes_and_clears_nothing(rule, values) -> None:
    mapped = compute_mapped(ada(**values), settings_with(organization=rule))
    assert "organization" not in mapped.attributes and mapped.problems == ()


def test_an_unmapped_value_without_default_is_reported_and_never_sent() -> None:
    rule = {"from": "address.country", "map": {"Germany": "de"}}
    mapped = compute_mapped(ada(), settings_with(organization=rule))
    assert "organization" not in mapped.attributes
    [problem] = mapped.problems
    assert "mapping.fields.organization" in problem and "'France'" in problem


def test_a_lang_outside_360learning_codes_is_reported_not_sent() -> None:
    mapped = compute_mapped(ada(), settings_with(lang={"from": "address.country"}))
    assert "lang" not in mapped.attributes and "not a 360Learning language" in mapped.problems[0]
    good = settings_with(lang={"from": "address.country", "map": {"France": "fr"}})
    assert compute_mapped(ada(), good).attributes["lang"] == "fr"


def test_every_field_a_rule_reads_is_requested() -> None:
    from reconciler.core.desired import required_fields

    settings = settings_with(
        phone={"from": "work.mobilePhone"}, custom={"template": "{work.custom.field_1} x"}
    )
    assert {"work.mobilePhone", "work.custom.field_1"} <= set(rule_sources(settings))
    assert {"work.mobilePhone", "work.custom.field_1"} <= set(required_fields(settings))


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"RECONCILER_MAPPING__FIELDS": '{"nickname": {"value": "x"}}'}, "nickname"),
        ({"RECONCILER_MAPPING__FIELDS": '{"job": {"value": "x", "from": "work.title"}}'}, "job"),
        ({"RECONCILER_MAPPING__FIELDS": '{"job": {}}'}, "job"),
        (
            {
                "RECONCILER_MAPPING__ORGANIZATION": "work.site",
                "RECONCILER_MAPPING__FIELDS": '{"organization": {"value": "x"}}',
            },
            "organization",
        ),
        ({"RECONCILER_MAPPING__FIELDS": '{"job": {"value": "x", "on": "never"}}'}, "on"),
    ],
)
def test_bad_rules_are_one_line_errors_naming_the_key(environ, named) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ, read_file=False)
    assert "mapping" in str(caught.value) and named in str(caught.value)
    assert "\n" not in str(caught.value)


# -- through a pass ------------------------------------------------------------------------------
def test_rules_are_applied_and_an_unchanged_pass_makes_no_360learning_call(tmp_path) -> None:
    world = World(
        tmp_path,
        RECONCILER_MAPPING__ORGANIZATION="",
        RECONCILER_MAPPING__FIELDS=json.dumps(
            {
                "organization": {"template": "{work.site} / {work.department}"},
                "custom": {"value": "synced by reconciler"},
            }
        ),
    )
    assert world.sync().outcome == "ok"
    hibob_id = world.active_employees()[2]
    record = world.hibob.records[hibob_id]
    department = world.hibob._labels["department"][record["work.department"]]
    user = world.user_of(hibob_id)
    assert user["organization"] == f"{record['work.site']} / {department}"
    assert user["custom"] == "synced by reconciler"
    before = len(world.learning.requests)
    assert world.sync().plan.actions == ()
    assert len(world.learning.requests) == before
    assert world.sync("full").plan.actions == ()


def test_a_rule_on_create_is_written_once_and_never_updated(tmp_path) -> None:
    world = World(
        tmp_path,
        RECONCILER_MAPPING__FIELDS=json.dumps({"job": {"from": "work.title", "on": "create"}}),
    )
    assert world.sync().outcome == "ok"
    hibob_id = world.active_employees()[2]
    created = world.user_of(hibob_id)["job"]
    assert created
    world.hibob.update_employee(hibob_id, **{"work.title": "Chief Tea Officer"})
    world.learning.edit_user(world.user_of(hibob_id)["_id"], job="Edited by herself")
    for kind in ("incremental", "full"):
        assert not [a for a in world.sync(kind).plan.actions if a.hibob_id == hibob_id]
    assert world.user_of(hibob_id)["job"] == "Edited by herself"
    hire = world.hibob.add_employee(
        email="new.hire@acme.example", **{"work.title": "Chief Tea Officer"}
    )
    world.sync()
    assert world.user_of(hire)["job"] == "Chief Tea Officer"


def test_an_unmapped_value_is_reported_on_the_employee_and_the_rest_is_written(tmp_path) -> None:
    world = World(
        tmp_path,
        RECONCILER_MAPPING__FIELDS=json.dumps(
            {"custom": {"from": "work.site", "map": {"London": "UK"}}}
        ),
    )
    result = world.sync()
    assert result.outcome == "ok"
    unmapped = [
        h for h in world.active_employees() if world.hibob.records[h]["work.site"] != "London"
    ]
    reported = {p.hibob_id for p in result.plan.problems if "mapping.fields.custom" in p.reason}
    assert unmapped and set(unmapped) <= reported
    assert all(world.user_of(h) and "custom" not in world.user_of(h) for h in unmapped)
    skipped = {row.hibob_id for row in world.store.list_skipped()}
    assert set(unmapped) <= skipped
