"""Settings: the rules, who is in scope (`[scope]`) and how an employee becomes a 360Learning
user (`[mapping]`: attributes, custom fields, groups), each validated when it loads.

Part of the foundation: `config.Settings` holds them; the core's scope and mapping rules read
them. Imports no layer.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator

from reconciler.settings_sections import _Section


class Condition(_Section):
    field: str
    """Hibob field id whose value (its label, as Bob shows it) is compared."""
    op: Literal["equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty"]
    """equals / not_equals (value), in / not_in (values), is_empty, is_not_empty."""
    value: str | None = None
    """The label for equals / not_equals (case-sensitive)."""
    values: list[str] | None = None
    """The labels for in / not_in (case-sensitive)."""

    @model_validator(mode="after")
    def _operands_fit_operator(self) -> Condition:
        if self.op in ("equals", "not_equals") and self.value is None:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'value'")
        if self.op in ("in", "not_in") and not self.values:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'values'")
        return self


class ScopeGroup(_Section):
    conditions: list[Condition] = []
    """All must hold (AND)."""


class ScopeSettings(_Section):
    groups: list[ScopeGroup] = []
    """Groups are ORed, conditions inside a group are ANDed; no group = everyone."""


class GroupRule(_Section):
    field: str
    """Hibob field id to read."""
    label: str
    """Its label that puts the employee in the group."""
    group_id: str
    """360Learning group id."""
    role: str = "learner"
    """Role in that group."""


RULE_TARGETS = ("firstName", "lastName", "job", "organization", "phone", "lang", "custom")
"""360Learning user attributes a `[mapping.fields]` rule may set."""


class FieldRule(_Section):
    """Where one 360Learning attribute's value comes from (product §1.5)."""

    model_config = ConfigDict(populate_by_name=True)
    source_field: str = Field(default="", alias="from")
    """A Hibob field id (list fields give their label, dates YYYY-MM-DD)."""
    template: str = ""
    """Text with {field.id} placeholders, e.g. "{work.site} / {work.department}"."""
    value: str | None = None
    """A constant."""
    map: dict[str, str] = {}
    """Lookup table from the source value to the value written."""
    default: str | None = None
    """Written when the source is empty or unmapped."""
    empty: Literal["keep", "clear"] = "keep"
    """An empty Hibob value keeps the 360Learning value, or clears it."""
    on: Literal["always", "create"] = "always"
    """Written on every change, or only when the account is created or adopted."""

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        sources = [bool(self.source_field), bool(self.template), self.value is not None]
        if sum(sources) != 1:
            raise ValueError("a rule needs exactly one source: from, template or value")
        return self

    def placeholders(self) -> list[str]:
        """The Hibob field ids the rule reads."""
        if self.source_field:
            return [self.source_field]
        return re.findall(r"\{([^{}]+)\}", self.template)


class CustomFieldRule(FieldRule):
    """Where one 360Learning user custom field's value comes from (product §1.5): the field by
    `name` (resolved with GET /api/v2/custom-fields) or `custom_field_id`, and a rule."""

    name: str = ""
    """The custom field's name as defined on the platform (targetType users)."""
    custom_field_id: str = ""
    """Or its id (24 hexadecimal characters)."""

    @model_validator(mode="after")
    def _one_field(self) -> CustomFieldRule:
        if bool(self.name) == bool(self.custom_field_id):
            raise ValueError("a custom field rule names its field by name or custom_field_id")
        if self.custom_field_id and not re.fullmatch(r"[0-9a-fA-F]{24}", self.custom_field_id):
            raise ValueError("custom_field_id must be 24 hexadecimal characters")
        return self

    @property
    def label(self) -> str:
        return self.name or self.custom_field_id


class MappingSettings(_Section):
    organization: str = "work.department"
    """Hibob field id whose label becomes `organization`, or "" for none."""
    lang: str = "en"
    """Default language of created users."""
    lang_field: str = ""
    """Optional Hibob field holding a language; "" = always `lang`."""
    manager: bool = True
    """Link work.reportsTo to the 360Learning manager."""
    deactivate_on_last_day: bool = False
    """Schedule toBeDeactivatedAt from the termination or last day."""
    timezone: str = "UTC"
    """IANA timezone in which dates (start, last day) are decided, e.g. "America/New_York"."""
    groups: list[GroupRule] = []
    """Membership rules: a label of a Hibob field -> a group and role."""
    fields: dict[str, FieldRule] = {}
    """Rules for user attributes (firstName, lastName, job, organization, phone, lang,
    custom): one source (from, template or value), map, default, empty, on."""

    custom_fields: list[CustomFieldRule] = []
    """Rules for 360Learning user custom fields ([[mapping.custom_fields]]): `name` or
    `custom_field_id`, and a rule (from, template or value; map, default, empty, on)."""

    @field_validator("fields")
    @classmethod
    def _known_targets(cls, rules: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name in rules:
            if name not in RULE_TARGETS:
                raise ValueError(
                    f"{name!r} is not an attribute a rule may set ({', '.join(RULE_TARGETS)})"
                )
        return rules

    @model_validator(mode="after")
    def _one_rule_per_attribute(self) -> MappingSettings:
        if "organization" in self.fields and "organization" in self.model_fields_set:
            if self.organization:
                raise ValueError(
                    "mapping.organization and mapping.fields.organization both set organization:"
                    ' keep one (mapping.organization = "" to use the rule)'
                )
        if "lang" in self.fields and self.lang_field:
            raise ValueError("mapping.lang_field and mapping.fields.lang both set lang: keep one")
        labels = [rule.label for rule in self.custom_fields]
        if twice := sorted({label for label in labels if labels.count(label) > 1}):
            raise ValueError(
                f"mapping.custom_fields: {', '.join(map(repr, twice))} has more than one rule"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as 'Europe/Paris')"
            ) from None
        return value
