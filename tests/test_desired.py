"""Desired state of one employee (product §1.3, §1.5): pure, `today` passed in."""

from __future__ import annotations

import datetime as dt

from reconciler.config import load_settings
from reconciler.core.desired import compute_desired
from reconciler.core.models import Employee

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def settings_from(**environ: str):
    return load_settings(environ=environ, read_file=False)


SETTINGS = settings_from(RECONCILER_LEARNING__DEFAULT_GROUP_ID="g0")


def employee(**overrides) -> Employee:
    values = {
        "root.id": "7",
        "root.email": " Ada.Lovelace@Example.com ",
        "root.firstName": "Ada",
        "root.surname": "Lovelace",
        "work.title": "t1",
        "work.department": "d1",
        "work.reportsTo": "3",
        "work.startDate": "2020-01-01",
        "internal.status": "Active",
        "internal.lifecycleStatus": "employed",
        "internal.terminationDate": None,
        "employee.lastDayOfWork": None,
    }
    values.update(overrides)
    values = {k: v for k, v in values.items() if v != "<hidden>"}
    return Employee("7", values=values, labels={"work.title": "Engineer", "work.department": "R&D"})


def desired(settings=SETTINGS, **overrides):
    return compute_desired(employee(**overrides), settings, NOW, True)


def test_active_employee_maps_the_default_fields() -> None:
    d = desired()
    assert d.verdict == "active"
    assert d.attributes == {
        "mail": "ada.lovelace@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "job": "Engineer",
        "organization": "R&D",
        "lang": "en",
    }
    assert d.manager_hibob_id == "3" and d.is_manager_known


def test_terminated_employee_is_inactive() -> None:
    d = desired(
        **{
            "internal.status": "Inactive",
            "internal.lifecycleStatus": "terminated",
            "internal.terminationDate": "2026-11-01",
        }
    )
    assert d.verdict == "inactive"


def test_hired_employee_is_provisioned_before_start_or_waits_with_at_start() -> None:
    hired = {
        "internal.status": "Inactive",
        "internal.lifecycleStatus": "hired",
        "work.startDate": "2026-12-20",
    }
    assert desired(**hired).verdict == "active"
    at_start = settings_from(
        RECONCILER_SYNC__PREHIRE="at_start", RECONCILER_SYNC__PREHIRE_DAYS_BEFORE="7"
    )
    assert desired(at_start, **hired).verdict == "wait"
    assert desired(at_start, **{**hired, "work.startDate": "2026-12-05"}).verdict == "active"


def test_missing_field_is_left_out_and_a_null_keeps_the_value_unless_the_rule_clears() -> None:
    d = desired(**{"work.title": "<hidden>", "root.surname": None})
    assert "job" not in d.attributes and "lastName" not in d.attributes  # empty = keep
    clearing = settings_from(
        RECONCILER_LEARNING__DEFAULT_GROUP_ID="g0",
        RECONCILER_MAPPING__FIELDS='{"lastName": {"from": "root.surname", "empty": "clear"}}',
    )
    assert desired(clearing, **{"root.surname": None}).attributes["lastName"] is None


def test_missing_access_status_decides_nothing() -> None:
    assert desired(**{"internal.status": "<hidden>"}).verdict == "unknown"


def test_missing_or_invalid_email_is_skipped_with_a_reason() -> None:
    assert desired(**{"root.email": None}).reason == "no email in Hibob"
    assert "invalid email" in desired(**{"root.email": "nope"}).reason


def test_out_of_scope_and_unknown_scope() -> None:
    assert compute_desired(employee(), SETTINGS, NOW, False).verdict == "out_of_scope"
    assert compute_desired(employee(), SETTINGS, NOW, None).verdict == "unknown"


def test_scheduled_deactivation_follows_the_last_day_when_enabled() -> None:
    settings = settings_from(RECONCILER_MAPPING__DEACTIVATE_ON_LAST_DAY="true")
    d = desired(
        settings,
        **{"internal.terminationDate": "2026-12-31", "employee.lastDayOfWork": "2026-12-15"},
    )
    assert d.attributes["toBeDeactivatedAt"] == "2026-12-16T00:00:00.000Z"
    assert desired(settings).attributes["toBeDeactivatedAt"] is None
    assert "toBeDeactivatedAt" not in desired().attributes


def test_group_rules_add_groups_by_label_and_unknown_field_means_unknown_groups() -> None:
    rules = '[{"field": "work.department", "label": "R&D", "group_id": "g1", "role": "learner"}]'
    settings = settings_from(
        RECONCILER_LEARNING__DEFAULT_GROUP_ID="g0", RECONCILER_MAPPING__GROUPS=rules
    )
    assert {g.group_id for g in desired(settings).groups} == {"g0", "g1"}
    assert desired(settings, **{"work.department": "<hidden>"}).groups is None


def invisible_characters() -> list[str]:
    """Control, format (zero-width, bidi) and surrogate characters of this Python's Unicode."""
    import unicodedata

    return [
        chr(c)
        for c in range(0x110000)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Zs")
    ]


def test_an_email_holding_a_zero_width_or_control_character_is_skipped_as_invalid() -> None:
    accepted = []
    for char in invisible_characters() + ["\u034f", "\u115f", "\u3164", "\ufe0f"]:
        for email in (f"ada{char}@example.com", f"ada@exa{char}mple.com", f"ada@example.co{char}m"):
            d = desired(**{"root.email": email})
            if d.verdict != "skip" or not d.reason.startswith("invalid email"):
                accepted.append(hex(ord(char)))
    assert accepted == []


def test_an_email_with_letters_beyond_ascii_is_still_valid() -> None:
    assert desired(**{"root.email": "zoë.nouvelle@exämple.com"}).verdict == "active"
