"""Pure: mapping rules (product §1.5). Every attribute the reconciler writes comes from one
rule: a source (`from` a Hibob field, a `template`, or a constant `value`), an optional `map`
with `default`, what an empty value does (`empty = keep | clear`) and when it is written
(`on = always | create`). Without a rule, the defaults are rules too (`default_rules`).

A rule's outcome is one of: a value to write; None with `empty = "clear"` (clear it); or
nothing (the attribute is left alone): the source is unknown (a field Hibob did not return,
a list item without its label, a template with such a placeholder), empty under `keep`, or
unmapped without a default, which is also reported on the employee and never sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.config import Settings
from reconciler.core.models import Employee
from reconciler.settings_rules import FieldRule

LANGS = frozenset(
    "bg cs da de el en es fi fr hr ht_HT hu id it ja kar_MM ko lt mh_MH nl nl_BE no pl pt ro "
    "ru rw_RW sk sl so_SO sv sw_KE th ti_ET tr uk zh vi".split()
)
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Mapped:
    """What the rules give for one employee."""

    attributes: Mapping[str, Any]  # attribute -> value to write (None: clear it)
    problems: tuple[str, ...] = ()  # values reported on the employee and not sent
    create_only: frozenset[str] = frozenset()  # written at create or adoption only


def default_rules(settings: Settings) -> dict[str, FieldRule]:
    """The rules in force: the defaults, the shorthands, then `[mapping.fields]`."""
    mapping = settings.mapping
    rules = {
        "firstName": FieldRule(source_field="root.firstName"),
        "lastName": FieldRule(source_field="root.surname"),
        "job": FieldRule(source_field="work.title"),
    }
    if mapping.organization:
        rules["organization"] = FieldRule(source_field=mapping.organization)
    if mapping.lang_field:
        rules["lang"] = FieldRule(source_field=mapping.lang_field, default=mapping.lang)
    else:
        rules["lang"] = FieldRule(value=mapping.lang)
    return {**rules, **mapping.fields}


def rule_sources(settings: Settings) -> list[str]:
    """Every Hibob field id a rule reads, custom-field rules included (requested by every
    pass: Hibob returns custom fields only when asked for)."""
    rules = [*default_rules(settings).values(), *settings.mapping.custom_fields]
    return sorted({f for rule in rules for f in rule.placeholders()})


def compute_mapped(employee: Employee, settings: Settings) -> Mapped:
    attributes: dict[str, Any] = {}
    problems: list[str] = []
    create_only: set[str] = set()
    for target, rule in default_rules(settings).items():
        if rule.on == "create":
            create_only.add(target)
        is_set, value, problem = compute_rule(rule, employee)
        if is_set and target == "lang" and value is not None and value not in LANGS:
            if target in settings.mapping.fields or not settings.mapping.lang_field:
                problem = f"lang {value!r} is not a 360Learning language code: not sent"
                is_set = False
            else:  # the lang_field shorthand falls back to mapping.lang, as it always has
                value = settings.mapping.lang
        if problem:
            problems.append(f"mapping.fields.{target}: {problem}")
        if is_set:
            attributes[target] = value
    return Mapped(attributes, tuple(problems), frozenset(create_only))


def compute_rule(rule: FieldRule, employee: Employee) -> tuple[bool, str | None, str | None]:
    """(is the attribute written, the value or None to clear, a problem to report)."""
    if rule.value is not None:
        raw: str | None = rule.value
    else:
        is_known, raw = _read(rule, employee)
        if not is_known:
            return False, None, None  # unknown: nothing written, nothing cleared
    if not raw:
        if rule.default is not None:
            return True, rule.default, None
        return (True, None, None) if rule.empty == "clear" else (False, None, None)
    if rule.map:
        if raw in rule.map:
            return True, rule.map[raw], None
        if rule.default is not None:
            return True, rule.default, None
        return False, None, f"{raw!r} has no entry in its map and no default: not sent"
    return True, raw, None


def _read(rule: FieldRule, employee: Employee) -> tuple[bool, str | None]:
    """(is the source known, its text or None when empty)."""
    if rule.source_field:
        if not employee.has_label(rule.source_field):
            return False, None
        return True, _text(employee.label(rule.source_field))
    parts: dict[str, str] = {}
    for field_id in _PLACEHOLDER.findall(rule.template):
        if not employee.has_label(field_id):
            return False, None  # a template with an unknown placeholder is unknown as a whole
        parts[field_id] = _text(employee.label(field_id)) or ""
    if parts and not any(parts.values()):
        return True, None
    return True, _text(_PLACEHOLDER.sub(lambda m: parts[m.group(1)], rule.template))


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def describe_rule(rule: FieldRule, employee: Employee) -> str:
    """A rule and the Hibob values it read, as `explain` shows them, e.g.
    `template "{work.site} / {work.department}" (work.site = Paris, work.department = Sales)`."""
    if rule.value is not None:
        text = f'value "{rule.value}"'
    elif rule.source_field:
        text = f"from {rule.source_field}"
    else:
        text = f'template "{rule.template}"'
    if rule.map:
        text += " through its map"
    if rule.default is not None:
        text += f', default "{rule.default}"'
    if rule.on == "create":
        text += ", on create only"
    read = [f"{f} = {_shown(employee, f)}" for f in rule.placeholders()]
    return text + (f" ({', '.join(read)})" if read else "")


def _shown(employee: Employee, field_id: str) -> str:
    if not employee.has(field_id):
        return "(not returned: unknown)"
    if not employee.has_label(field_id):
        return "(no label: unknown)"
    return _text(employee.label(field_id)) or "(empty)"
