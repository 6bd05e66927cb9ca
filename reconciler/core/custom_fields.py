"""Pure: 360Learning user custom fields (product §1.5). A `[[mapping.custom_fields]]` rule is a
mapping rule (`core.mapping.compute_rule`) whose target is a custom field resolved by name or
id from the platform's definitions; its value is checked against the field's type (dates as
YYYY-MM-DD) and authorized values before anything is sent.

Desired values travel as attributes keyed `customField:<id>` (so the snapshot, `on = create`
and `empty = clear` work as for any attribute); apply splits them off and writes them with the
replace-all PUT, merged into the user's current set by `merge_custom_values`. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from reconciler.config import Settings
from reconciler.core.mapping import Mapped, compute_rule
from reconciler.settings_rules import CustomFieldRule

PREFIX = "customField:"
SETTING = "mapping.custom_fields"


@dataclass(frozen=True)
class CustomFieldDefinition:
    """A 360Learning user custom field as GET /api/v2/custom-fields (and its authorized
    values) describe it. `authorized_values` empty: any value."""

    custom_field_id: str
    name: str
    type: str  # string | date
    authorized_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedCustomFields:
    """The configured rules whose field resolved, and why the others did not."""

    rules: tuple[tuple[CustomFieldRule, CustomFieldDefinition], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def definitions(self) -> tuple[CustomFieldDefinition, ...]:
        return tuple(d for _, d in self.rules)


def custom_key(definition: CustomFieldDefinition | str) -> str:
    """The attribute key a custom field's value travels under."""
    field_id = definition if isinstance(definition, str) else definition.custom_field_id
    return PREFIX + field_id


def is_custom_key(key: str) -> bool:
    return key.startswith(PREFIX)


def custom_field_id(key: str) -> str:
    return key.removeprefix(PREFIX)


def resolve_custom_fields(
    settings: Settings, definitions: Iterable[CustomFieldDefinition]
) -> ResolvedCustomFields:
    """Each rule's field, by id or by exact name; a name two fields share is ambiguous."""
    known = list(definitions)
    rules, problems = [], []
    for number, rule in enumerate(settings.mapping.custom_fields):
        where = f"{SETTING}[{number}] ({rule.label})"
        if rule.custom_field_id:
            found = [d for d in known if d.custom_field_id == rule.custom_field_id]
        else:
            found = [d for d in known if d.name == rule.name]
        if len(found) == 1:
            rules.append((rule, found[0]))
        elif not found:
            problems.append(
                f"{where}: no 360Learning user custom field has this "
                f"{'id' if rule.custom_field_id else 'name'}: its values are not written"
            )
        else:
            problems.append(
                f"{where}: {len(found)} user custom fields have this name: use custom_field_id"
            )
    return ResolvedCustomFields(tuple(rules), tuple(problems))


def compute_custom_values(employee: Any, resolved: ResolvedCustomFields) -> Mapped:
    """What the custom-field rules give for one employee (keys `customField:<id>`)."""
    attributes: dict[str, Any] = {}
    problems: list[str] = []
    create_only: set[str] = set()
    for rule, definition in resolved.rules:
        key = custom_key(definition)
        if rule.on == "create":
            create_only.add(key)
        is_set, value, problem = compute_rule(rule, employee)
        if is_set and value is not None:
            value, problem = check_value(definition, value)
            is_set = problem is None
        if problem:
            problems.append(f"{SETTING}.{definition.name}: {problem}")
        if is_set:
            attributes[key] = value
    return Mapped(attributes, tuple(problems), frozenset(create_only))


def check_value(definition: CustomFieldDefinition, value: str) -> tuple[str | None, str | None]:
    """(the value as 360Learning takes it, or None with why it is not sent)."""
    if definition.type == "date":
        day = _day(value)
        if day is None:
            return None, f"{value!r} is not a date (YYYY-MM-DD): not sent"
        value = day
    if definition.authorized_values and value not in definition.authorized_values:
        return None, (
            f"{value!r} is not an authorized value of {definition.name!r} "
            f"({', '.join(definition.authorized_values[:5])}"
            f"{', ...' if len(definition.authorized_values) > 5 else ''}): not sent"
        )
    return value, None


def compute_misfits(rule: CustomFieldRule, definition: CustomFieldDefinition) -> list[str]:
    """The constants of a rule (its `map` values, `value`, `default`) that the field would
    refuse (`reconciler check`)."""
    constants = [*rule.map.values(), rule.value, rule.default]
    found = []
    for constant in dict.fromkeys(c for c in constants if c):
        _, problem = check_value(definition, constant)
        if problem:
            found.append(problem.removesuffix(": not sent"))
    return found


def with_custom_values(desired: Any, employee: Any, resolved: ResolvedCustomFields) -> Any:
    """`desired` (a core.desired.Desired) with the custom fields' values and problems."""
    if not resolved.rules or desired.verdict in ("out_of_scope", "unknown", "skip"):
        return desired
    mapped = compute_custom_values(employee, resolved)
    return replace(
        desired,
        attributes={**desired.attributes, **mapped.attributes},
        mapping_problems=desired.mapping_problems + mapped.problems,
        create_only=desired.create_only | mapped.create_only,
    )


def normalize_value(type_: str, raw: Any) -> str | None:
    """A value as read from 360Learning, comparable with what is written (dates: the day)."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    return (_day(text) or text) if type_ == "date" else text


def split_custom(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user attributes, custom-field values) of an action's changes."""
    plain = {k: v for k, v in changes.items() if not is_custom_key(k)}
    custom = {k: v for k, v in changes.items() if is_custom_key(k)}
    return plain, custom


def merge_custom_values(
    current: Sequence[Mapping[str, Any]],
    managed: Mapping[str, str | None],
    definitions: Iterable[CustomFieldDefinition],
) -> list[dict[str, str]]:
    """The whole set to PUT: every current value of a field not in `managed` kept as it is,
    each managed field set to its value (None: removed)."""
    types = {d.custom_field_id: d.type for d in definitions}
    ids = {custom_field_id(k): v for k, v in managed.items()}
    merged = [
        {"customFieldId": str(v["customFieldId"]), "type": str(v["type"]), "value": _sent(v)}
        for v in current
        if str(v.get("customFieldId")) not in ids and v.get("value") not in (None, "")
    ]
    for field_id, value in sorted(ids.items()):
        if value is not None:
            merged.append(
                {"customFieldId": field_id, "type": types.get(field_id, "string"), "value": value}
            )
    return merged


def held_values(current: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """`customField:<id>` -> value, from a user's values as 360Learning returns them."""
    return {
        custom_key(str(v["customFieldId"])): normalize_value(str(v.get("type")), v.get("value"))
        for v in current
        if v.get("customFieldId")
    }


def _sent(value: Mapping[str, Any]) -> str:
    """A kept value re-sent as 360Learning takes it (a date read back as a date-time is sent
    as its day)."""
    return normalize_value(str(value.get("type")), value.get("value")) or ""


def _day(text: str) -> str | None:
    try:
        return date.fromisoformat(text.strip()[:10]).isoformat()
    except ValueError:
        return None
