"""Settings: the file, systemd credentials and the environment, and every way a value can be
wrong. Each mistake is one ConfigError naming the setting or the variable; nothing slips through."""

from __future__ import annotations

import logging
import os

import pytest

from reconciler.config import load_settings
from reconciler.errors import ConfigError


def load(environ: dict[str, str] | None = None, text: str | None = None, tmp_path=None):
    if text is None:
        return load_settings(environ=environ or {}, read_file=False)
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ=environ or {})


# -- the environment -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "variable",
    [
        "RECONCILER_SYNCH__INTERVAL_MINUTES",  # misspelt section
        "RECONCILER_SYNC_INTERVAL_MINUTES",  # one underscore
        "RECONCILER_SYNC__INTERVALL_MINUTES",  # misspelt key
        "RECONCILER_SYNC__INTERVAL_MINUTES__X",  # one level too deep
        "RECONCILER_SYNC",  # a section, no key
    ],
)
def test_an_environment_variable_that_names_no_setting_is_an_error_naming_it(variable):
    with pytest.raises(ConfigError) as caught:
        load({variable: "5"})

    assert variable in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_one_underscore_variable_error_says_which_variable_was_meant():
    with pytest.raises(ConfigError, match="RECONCILER_SYNC__MAX_DEACTIVATIONS"):
        load({"RECONCILER_SYNC_MAX_DEACTIVATIONS": "5"})


def test_the_config_path_variable_is_not_mistaken_for_a_setting(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[sync]\ninterval_minutes = 5\n", encoding="utf-8")

    settings = load_settings(environ={"RECONCILER_CONFIG": str(path)})

    assert settings.sync.interval_minutes == 5


def test_the_environment_beats_credentials_which_beat_the_file(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "learning_client_secret").write_text("from-credential\n")
    (credentials / "learning_client_id").write_text("client-from-credential")
    environ = {
        "CREDENTIALS_DIRECTORY": str(credentials),
        "RECONCILER_LEARNING__CLIENT_ID": "client-from-env",
        "RECONCILER_SYNC__INTERVAL_MINUTES": "7",
    }

    settings = load(environ, "[sync]\ninterval_minutes = 5\nmax_deactivations = 3\n", tmp_path)

    assert settings.learning.client_id == "client-from-env"
    assert settings.learning.client_secret.get_secret_value() == "from-credential"
    assert (settings.sync.interval_minutes, settings.sync.max_deactivations) == (7, 3)


def test_list_and_table_settings_are_read_as_json_from_the_environment():
    settings = load(
        {
            "RECONCILER_HIBOB__EXTRA_FIELDS": '["work.custom.x"]',
            "RECONCILER_SCOPE__GROUPS": (
                '[{"conditions": [{"field": "work.site", "op": "is_empty"}]}]'
            ),
            "RECONCILER_LEARNING__SEND_INVITATION_EMAIL": "true",
        }
    )

    assert settings.hibob.extra_fields == ["work.custom.x"]
    assert settings.scope.groups[0].conditions[0].op == "is_empty"
    assert settings.learning.send_invitation_email is True


def test_a_list_that_is_not_json_names_the_variable():
    with pytest.raises(ConfigError, match="RECONCILER_HIBOB__EXTRA_FIELDS.*JSON"):
        load({"RECONCILER_HIBOB__EXTRA_FIELDS": "work.custom.x"})


def test_a_bad_value_from_the_environment_names_the_setting_and_the_variable():
    with pytest.raises(ConfigError) as caught:
        load({"RECONCILER_SYNC__MAX_DEACTIVATIONS": "many"})

    assert "sync.max_deactivations" in str(caught.value)
    assert "RECONCILER_SYNC__MAX_DEACTIVATIONS" in str(caught.value)


def test_loading_reads_the_given_environment_and_leaves_the_process_environment_alone(monkeypatch):
    monkeypatch.setenv("RECONCILER_SYNC__INTERVAL_MINUTES", "7")
    before = dict(os.environ)

    given = load_settings(environ={"RECONCILER_SYNC__MAX_DEACTIVATIONS": "4"}, read_file=False)
    process = load_settings(read_file=False)

    assert (given.sync.interval_minutes, given.sync.max_deactivations) == (15, 4)
    assert process.sync.interval_minutes == 7
    assert dict(os.environ) == before


def test_lower_case_variables_are_read_like_upper_case_ones():
    assert load({"reconciler_sync__interval_minutes": "3"}).sync.interval_minutes == 3


# -- values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1"])
def test_a_write_rate_that_is_not_a_positive_finite_number_is_rejected(value, tmp_path):
    with pytest.raises(ConfigError, match="learning.max_writes_per_second"):
        load(text=f"[learning]\nmax_writes_per_second = {value}\n", tmp_path=tmp_path)


@pytest.mark.parametrize(
    "setting",
    ["hibob.timeout_seconds", "learning.timeout_seconds", "learning.max_reads_per_second"],
)
@pytest.mark.parametrize("value", ["-1", "0", "inf", "nan"])
def test_timeouts_and_read_rates_must_be_positive_and_finite(setting, value, tmp_path):
    section, key = setting.split(".")
    with pytest.raises(ConfigError, match=setting):
        load(text=f"[{section}]\n{key} = {value}\n", tmp_path=tmp_path)


@pytest.mark.parametrize("cron", ["0 3 * *", "61 3 * * *", "0 3 * * funday", "every night"])
def test_a_bad_full_resync_cron_is_rejected_when_the_settings_load(cron):
    with pytest.raises(ConfigError, match="sync.full_resync_cron"):
        load({"RECONCILER_SYNC__FULL_RESYNC_CRON": cron})


def test_a_good_full_resync_cron_loads():
    assert load({"RECONCILER_SYNC__FULL_RESYNC_CRON": "30 2 * * mon-fri"}) is not None


def test_a_secret_in_the_settings_file_is_used_with_one_warning_naming_the_variable(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING)

    settings = load(text='[learning]\nclient_secret = "s3cr3t-in-file"\n', tmp_path=tmp_path)

    assert settings.learning.client_secret.get_secret_value() == "s3cr3t-in-file"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "learning.client_secret" in warnings[0]
    assert "RECONCILER_LEARNING__CLIENT_SECRET" in warnings[0]
    assert "s3cr3t-in-file" not in caplog.text


def test_an_alert_webhook_url_in_the_file_is_warned_about_too(tmp_path, caplog):
    caplog.set_level(logging.WARNING)

    load(text='[notify]\nwebhook_url = "https://hooks.example/T0/B0/tok3n"\n', tmp_path=tmp_path)

    assert "RECONCILER_NOTIFY__WEBHOOK_URL" in caplog.text and "tok3n" not in caplog.text


def test_settings_without_secrets_in_the_file_warn_about_nothing(tmp_path, caplog):
    caplog.set_level(logging.WARNING)

    load({"RECONCILER_LEARNING__CLIENT_SECRET": "x"}, "[sync]\ninterval_minutes = 5\n", tmp_path)

    assert caplog.records == []


def test_an_unknown_key_in_the_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"^setting sync.intervall_minutes: unknown setting$"):
        load(text="[sync]\nintervall_minutes = 5\n", tmp_path=tmp_path)


def test_a_missing_explicit_settings_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "environ", "named"),
    [
        ("[hibob]\ntimeout_seconds = -1\n", {}, "hibob.timeout_seconds"),
        ("", {"RECONCILER_SYNCH__INTERVAL_MINUTES": "5"}, "RECONCILER_SYNCH__INTERVAL_MINUTES"),
        ('[sync]\nfull_resync_cron = "0 3 * *"\n', {}, "sync.full_resync_cron"),
    ],
)
def test_the_cli_turns_a_bad_setting_into_one_line_and_exit_2(
    text, environ, named, tmp_path, monkeypatch, capsys
):
    from reconciler.commands.cli import main

    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)

    code = main(["--config", str(path), "status"])

    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (2, 1)
    assert named in err and "Traceback" not in err
