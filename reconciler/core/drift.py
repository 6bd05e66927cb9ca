"""Pure: field visibility drift (product §3). A field the rules use that was filled for most
employees in the last successful full read, but comes back empty or missing for most of them
now, is withheld (a permission change, or Hibob answering null for a hidden field): it is
unknown for this pass, so nothing is cleared or removed because of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from reconciler.config import Settings
from reconciler.core.models import Employee

# Hibob categories to grant when a deciding field is withheld, by field id prefix.
CATEGORY_OF = {
    "internal": "Lifecycle",
    "root": "Basic info",
    "work": "Work",
    "employee": "Employment",
    "about": "About",
    "home": "Personal contact details",
    "payroll": "Payroll",
}
MOST = 0.5
MIN_EMPLOYEES = 10  # below this many, a share says nothing


def category_of(field_id: str) -> str:
    return CATEGORY_OF.get(field_id.split(".")[0], "the field's category")


def rule_fields(settings: Settings) -> list[str]:
    """The fields whose values the rules write or decide with (scope, groups, attributes)."""
    fields = ["root.firstName", "root.surname", "work.title", settings.mapping.organization]
    fields += [c.field for g in settings.scope.groups for c in g.conditions]
    fields += [rule.field for rule in settings.mapping.groups]
    fields.append(settings.mapping.lang_field)
    fields += [f for rule in settings.mapping.custom_fields for f in rule.placeholders()]
    return sorted({f for f in fields if f})


def compute_fill(employees: Sequence[Employee], fields: Iterable[str]) -> dict[str, float]:
    """The share of `employees` for whom each field came back non-empty."""
    if not employees:
        return {}
    return {f: sum(1 for e in employees if _is_filled(e, f)) / len(employees) for f in fields}


def compute_withheld_fields(
    before: Mapping[str, float], now: Mapping[str, float], population: int
) -> dict[str, tuple[float, float]]:
    """(share before, share now) of each field filled for most before and for few now."""
    if population < MIN_EMPLOYEES:
        return {}
    return {
        f: (before[f], share)
        for f, share in now.items()
        if f in before and before[f] > MOST and share < MOST
    }


def describe_withheld(field_id: str, before: float, now: float) -> str:
    return (
        f"{field_id} came back empty or missing for {1 - now:.0%} of employees (filled for "
        f"{before:.0%} in the last successful full pass): treated as withheld, nothing is "
        f"cleared or removed because of it; grant the service user's permission group View "
        f"on the {category_of(field_id)!r} category"
    )


def without_fields(employee: Employee, fields: Iterable[str]) -> Employee:
    """The employee with `fields` unknown (as if Hibob had not returned them)."""
    drop = [f for f in fields if f in employee.values]
    if not drop:
        return employee
    return replace(
        employee,
        values={k: v for k, v in employee.values.items() if k not in drop},
        labels={k: v for k, v in employee.labels.items() if k not in drop},
    )


def _is_filled(employee: Employee, field_id: str) -> bool:
    return employee.has_label(field_id) and employee.value(field_id) not in (None, "", [])
