"""Scope conditions: labels as Bob shows them, AND inside a group, OR across groups."""

from __future__ import annotations

import pytest

from reconciler.core.models import Employee
from reconciler.core.scope import compute_in_scope
from reconciler.settings_rules import Condition, ScopeGroup

ENGINEER = Employee(
    "1",
    values={"work.department": "209", "work.site": "Paris", "work.custom": None},
    labels={"work.department": "Engineering"},
)


def group(*conditions: dict) -> ScopeGroup:
    return ScopeGroup(conditions=[Condition(**c) for c in conditions])


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "work.department", "op": "equals", "value": "Engineering"}, True),
        ({"field": "work.department", "op": "equals", "value": "engineering"}, False),
        ({"field": "work.department", "op": "equals", "value": "209"}, False),
        ({"field": "work.department", "op": "not_equals", "value": "Sales"}, True),
        ({"field": "work.department", "op": "in", "values": ["Sales", "Engineering"]}, True),
        ({"field": "work.department", "op": "not_in", "values": ["Engineering"]}, False),
        ({"field": "work.custom", "op": "is_empty"}, True),
        ({"field": "work.site", "op": "is_not_empty"}, True),
        ({"field": "work.site", "op": "equals", "value": "Paris"}, True),
    ],
)
def test_each_operator_compares_the_label_bob_shows(condition: dict, expected: bool) -> None:
    assert compute_in_scope([group(condition)], ENGINEER) is expected


def test_no_group_means_everyone() -> None:
    assert compute_in_scope([], ENGINEER) is True


def test_conditions_in_a_group_are_anded_and_groups_ored() -> None:
    sales = {"field": "work.department", "op": "equals", "value": "Sales"}
    paris = {"field": "work.site", "op": "equals", "value": "Paris"}
    engineering = {"field": "work.department", "op": "equals", "value": "Engineering"}
    assert compute_in_scope([group(sales, paris)], ENGINEER) is False
    assert compute_in_scope([group(sales), group(engineering, paris)], ENGINEER) is True


def test_a_condition_on_a_field_hibob_did_not_return_makes_scope_unknown() -> None:
    hidden = {"field": "work.secret", "op": "equals", "value": "x"}
    assert compute_in_scope([group(hidden)], ENGINEER) is None
    failing = {"field": "work.department", "op": "equals", "value": "Sales"}
    assert compute_in_scope([group(hidden, failing)], ENGINEER) is False


def test_a_condition_without_its_operand_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="needs 'values'"):
        Condition(field="work.site", op="in")
