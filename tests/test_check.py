"""`reconciler check` (commands.check) against both simulators: ok, WARN and FAIL lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reconciler.commands.check import run_checks
from tests.support import World

ENGINEERING_SCOPE = json.dumps(
    [{"conditions": [{"field": "work.department", "op": "in", "values": ["Engineering"]}]}]
)


def check(world: World, **settings: str) -> tuple[int, str]:
    services = world.build(**settings) if settings else world.services
    out = io.StringIO()
    code = run_checks(services.settings, services, out)
    return code, out.getvalue()


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, size=30)


def test_check_passes_with_every_scope_and_changes_nothing_anywhere(world) -> None:
    users_before = world.learning.users_by_mail()

    code, out = check(world, RECONCILER_SCOPE__GROUPS=ENGINEERING_SCOPE)

    assert code == 0 and lines(out, "FAIL") == []
    for scope in ("users:write", "groups:write", "externalIds:write"):
        assert f"ok   360Learning scope {scope} is granted" in out
    assert "labels of work.department (scope.groups[0].conditions[0]) exist" in out
    assert world.learning.users_by_mail() == users_before
    assert world.learning.external_ids() == []
    assert world.store.load_service_state() == {}
    assert out.splitlines()[-1].startswith("check: ")


@pytest.mark.parametrize("scope", ["users:write", "groups:write", "externalIds:write"])
def test_check_fails_naming_a_missing_write_scope(world, scope) -> None:
    world.learning.scopes.discard(scope)

    code, out = check(world)

    assert code == 1
    (failure,) = lines(out, "FAIL")
    assert f"lacks the {scope} scope" in failure and "Settings > API v2" in failure


def test_a_typo_in_a_scope_field_fails_with_a_did_you_mean(world) -> None:
    scope = [{"conditions": [{"field": "work.departmnt", "op": "is_not_empty"}]}]

    code, out = check(world, RECONCILER_SCOPE__GROUPS=json.dumps(scope))

    assert code == 1
    assert (
        "FAIL Hibob field work.departmnt (scope.groups[0].conditions[0]) does not exist in "
        "Hibob: did you mean 'work.department'?"
    ) in out


def test_a_misspelt_list_label_fails_with_a_did_you_mean(world) -> None:
    scope = [{"conditions": [{"field": "work.department", "op": "equals", "value": "Enginering"}]}]

    code, out = check(world, RECONCILER_SCOPE__GROUPS=json.dumps(scope))

    assert code == 1
    assert (
        "FAIL label 'Enginering' of work.department (scope.groups[0].conditions[0]) is not "
        "in Hibob list 'department': did you mean 'Engineering'?"
    ) in out


def test_a_group_rule_label_is_checked_against_the_list_too(world) -> None:
    rule = [
        {"field": "work.department", "label": "Sals", "group_id": world.learning.sales_group_id}
    ]

    code, out = check(world, RECONCILER_MAPPING__GROUPS=json.dumps(rule))

    assert code == 1 and "did you mean 'Sales'?" in out and "(mapping.groups[0])" in out


def test_a_label_no_employee_holds_on_a_text_field_is_only_a_warning(world) -> None:
    site = next(r["work.site"] for r in world.hibob.records.values() if r.get("work.site"))
    scope = [{"conditions": [{"field": "work.site", "op": "not_equals", "value": site + "z"}]}]

    code, out = check(world, RECONCILER_SCOPE__GROUPS=json.dumps(scope))

    assert code == 0
    (warning,) = [line for line in lines(out, "WARN") if f"{site}z" in line]
    assert f"did you mean {site!r}?" in warning


def test_no_inactive_people_visible_is_a_warning_not_a_failure(world) -> None:
    world.hibob.access_filter = lambda record: record.get("internal.status") == "Active"

    code, out = check(world)

    assert code == 0
    assert any("no inactive people" in line for line in lines(out, "WARN"))


def test_hidden_lifecycle_fields_fail_naming_the_category_to_grant(world) -> None:
    world.hibob.hide_category("lifecycle")

    code, out = check(world)

    assert code == 1
    assert (
        "FAIL Hibob field internal.status is never returned: grant the service user View "
        "on the 'Lifecycle' category"
    ) in out


def test_a_read_only_database_fails(world) -> None:
    world.store.conn.execute("PRAGMA query_only = ON")

    code, out = check(world)

    assert code == 1 and "is not writable" in lines(out, "FAIL")[0]


def test_a_database_from_a_newer_version_fails(world) -> None:
    world.store.conn.execute("PRAGMA user_version = 99")

    code, out = check(world)

    assert code == 1 and "schema version 99, newer than" in lines(out, "FAIL")[0]


def test_wrong_hibob_credentials_fail_once_and_the_rest_still_runs(world) -> None:
    code, out = check(world, RECONCILER_HIBOB__SERVICE_USER_TOKEN="wrong-token")

    assert code == 1
    (failure,) = lines(out, "FAIL")
    assert "Hibob" in failure and "401" in failure and "wrong-token" not in out
    assert "ok   360Learning scope users:write is granted" in out


def test_a_database_without_any_pass_is_a_warning_that_goes_away_after_a_pass(world) -> None:
    code, out = check(world)
    world.sync()
    code_after, out_after = check(world)

    assert code == code_after == 0
    assert any("holds no pass yet" in line for line in lines(out, "WARN"))
    assert not any("holds no pass yet" in line for line in lines(out_after, "WARN"))


# -- issue 15, item 14: check says what would hurt, and only fails on what stops the service --
def test_without_groups_read_check_warns_and_still_tests_the_write_scopes(world) -> None:
    world.learning.scopes.discard("groups:read")

    code, out = check(world)

    assert code == 0, out
    assert any("groups:read" in line for line in lines(out, "WARN"))
    for scope in ("users:write", "groups:write"):
        assert f"ok   360Learning scope {scope} is granted" in out


def test_a_secret_in_the_settings_file_is_no_all_ok(world, tmp_path) -> None:
    settings = tmp_path / "with-secret.toml"
    settings.write_text('[learning]\nclient_secret = "in-the-file"\n', encoding="utf-8")

    services = world.services
    out = io.StringIO()
    code = run_checks(services.settings, services, out, config_path=settings)

    text = out.getvalue()
    assert code == 0 and "check: all ok" not in text
    [warning] = [line for line in lines(text, "WARN") if "learning.client_secret" in line]
    assert str(settings) in warning and "RECONCILER_LEARNING__CLIENT_SECRET" in warning
    assert "in-the-file" not in text


def test_a_receiver_on_every_interface_is_told_about_tls(world) -> None:
    code, out = check(world, RECONCILER_WEBHOOKS__LISTEN="0.0.0.0:8480")

    assert code == 0 and "check: all ok" not in out
    [warning] = [line for line in lines(out, "WARN") if "webhooks.listen" in line]
    assert "TLS" in warning and "0.0.0.0:8480" in warning
    _, loopback = check(world, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:8480")
    assert not [line for line in lines(loopback, "WARN") if "webhooks.listen" in line]


def test_the_admin_page_needs_a_well_formed_password_hash_and_check_says_so(world) -> None:
    from reconciler.service.admin_auth import hash_password

    code, out = check(world, RECONCILER_ADMIN__LISTEN="127.0.0.1:8481")
    assert code == 1 and "admin.password_hash is missing" in "".join(lines(out, "FAIL"))
    code, out = check(
        world,
        RECONCILER_ADMIN__LISTEN="127.0.0.1:8481",
        RECONCILER_ADMIN__PASSWORD_HASH="scrypt$not$a$hash",
    )
    assert code == 1 and "setting admin.password_hash: not a hash" in out
    assert "not$a$hash" not in out
    good = hash_password("a good long admin password")
    code, out = check(
        world, RECONCILER_ADMIN__LISTEN="0.0.0.0:8481", RECONCILER_ADMIN__PASSWORD_HASH=good
    )
    assert code == 0 and "admin page: on 0.0.0.0:8481" in out and good not in out
    assert any("admin.listen = 0.0.0.0:8481 accepts" in w for w in lines(out, "WARN"))


# -- mapping rules and custom fields (issue 16) -------------------------------------------------
CUSTOM = [
    {
        "name": "Cost center",
        "from": "work.custom.field_1644932887286",
        "map": {"CC 12": "CC-12", "CC 99": "CC-99"},
    },
    {"name": "Contract end", "from": "work.custom.field_1716448572063", "default": "soon"},
    {"name": "Nope", "value": "x"},
]


def custom_world(world: World) -> World:
    world.learning.add_custom_field("Cost center", "string", authorized_values=["CC-12"])
    world.learning.add_custom_field("Contract end", "date")
    for hibob_id in world.hibob.records:
        world.hibob.update_employee(
            hibob_id,
            **{"work.custom.field_1644932887286": "CC 12", "work.custom.field_1716448572063": None},
        )
    return world


def test_check_resolves_custom_fields_and_fits_map_values_and_constants(world) -> None:
    code, out = check(custom_world(world), RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(CUSTOM))

    assert code == 1
    failures = "\n".join(lines(out, "FAIL"))
    assert "mapping.custom_fields[2] (Nope)" in failures and "no 360Learning" in failures
    assert "'CC-99'" in failures and "authorized" in failures
    assert "'soon'" in failures and "date" in failures
    assert "'CC-12'" not in failures
    assert "ok   360Learning scope customFields:read is granted" in out
    fixed = [{**CUSTOM[0], "map": {"CC 12": "CC-12"}}]
    code, out = check(world, RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(fixed))
    assert code == 0, out
    assert "ok   360Learning custom field 'Cost center' (string, 1 authorized values)" in out


def test_check_fails_without_the_custom_fields_read_scope_when_custom_fields_are_set(world) -> None:
    custom_world(world).learning.scopes.discard("customFields:read")

    code, out = check(world, RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(CUSTOM[:1]))

    assert code == 1
    assert any("customFields:read" in line for line in lines(out, "FAIL"))
    world.learning.scopes.add("customFields:read")


def test_a_rule_field_hibob_does_not_know_fails_with_a_did_you_mean(world) -> None:
    rules = [{"name": "Cost center", "from": "work.custom.field_164493288728"}]

    code, out = check(custom_world(world), RECONCILER_MAPPING__CUSTOM_FIELDS=json.dumps(rules))

    assert code == 1
    assert (
        "FAIL Hibob field work.custom.field_164493288728 (mapping.custom_fields[0]) does not "
        "exist in Hibob: did you mean 'work.custom.field_1644932887286'?"
    ) in out


def test_every_lang_value_of_the_rules_is_a_360learning_language_code(world) -> None:
    rules = {"lang": {"from": "work.site", "map": {"Paris": "fr", "London": "english"}}}

    code, out = check(world, RECONCILER_MAPPING__FIELDS=json.dumps(rules))

    assert code == 1
    (failure,) = [line for line in lines(out, "FAIL") if "lang" in line]
    assert "'english'" in failure and "mapping.fields.lang" in failure


def test_in_shadow_mode_check_needs_no_write_scope_and_sends_no_write(world) -> None:
    for scope in ("users:write", "groups:write", "externalIds:write"):
        world.learning.scopes.discard(scope)

    code, out = check(world, RECONCILER_SYNC__MODE="shadow")

    assert code == 0, out
    assert lines(out, "FAIL") == []
    assert "sync.mode = 'shadow': no write scope is needed" in out
    assert world.learning_writes() == []
