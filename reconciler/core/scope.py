"""Pure: "who to listen for" — evaluate the customer's scope groups against one employee.

Conditions name Hibob field ids and compare against labels as Bob shows them (case-sensitive).
Conditions in a group are ANDed, groups are ORed, no group means everyone. A condition on a
field Hibob did not return (permissions) is *unknown*, and an unknown scope decides nothing.
No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core.models import Employee
from reconciler.settings_rules import Condition, ScopeGroup


@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    label: str | None
    is_known: bool
    matches: bool


def compute_condition(condition: Condition, employee: Employee) -> ConditionResult:
    if not employee.has_label(condition.field):
        return ConditionResult(condition, None, False, False)
    label = employee.label(condition.field)
    empty = label is None or label == ""
    match condition.op:
        case "equals":
            matches = label == condition.value
        case "not_equals":
            matches = label != condition.value
        case "in":
            matches = label in (condition.values or [])
        case "not_in":
            matches = label not in (condition.values or [])
        case "is_empty":
            matches = empty
        case _:  # is_not_empty
            matches = not empty
    return ConditionResult(condition, label, True, matches)


def compute_in_scope(groups: Sequence[ScopeGroup], employee: Employee) -> bool | None:
    """True/False, or None when the answer depends on a field Hibob did not return."""
    if not groups:
        return True
    unknown = False
    for group in groups:
        results = [compute_condition(c, employee) for c in group.conditions]
        if all(r.matches for r in results):
            return True
        # The group fails for sure only if a *known* condition fails.
        if not any(r.is_known and not r.matches for r in results):
            unknown = True
    return None if unknown else False
