"""The command line end to end, in process, against the simulators served on loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reconciler.commands.cli import main
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from tests.support import TODAY, sandbox_environ


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    hibob = HibobSimulator(generate_company(30, seed=3, today=TODAY), today=TODAY)
    learning = LearningSimulator(enforce_rate_limits=False)
    with serve(hibob.handle) as hibob_server, serve(learning.handle) as learning_server:
        env = sandbox_environ(learning, tmp_path / "cli.db")
        env["RECONCILER_HIBOB__BASE_URL"] = f"{hibob_server.url}/v1"
        env["RECONCILER_LEARNING__BASE_URL"] = learning_server.url
        env["RECONCILER_CONFIG"] = str(tmp_path / "settings.toml")
        (tmp_path / "settings.toml").write_text("[sync]\ninterval_minutes = 5\n")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield hibob, learning, tmp_path


def test_dry_run_prints_counts_and_one_line_per_action_and_writes_nothing(served, capsys):
    hibob, learning, _ = served
    assert main(["sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    first, *lines = out.splitlines()
    creates = [line for line in lines if " create " in line]
    assert first.startswith("dry run: dry-run") and f"create {len(creates)}" in first
    assert creates and all("  new: " in line for line in creates)
    assert [r for r in learning.requests if r[0] != "GET" and "oauth2" not in r[1]] == []


def test_sync_then_status_and_history_json_report_the_pass(served, capsys):
    assert main(["sync"]) == 0
    assert main(["sync"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["last_pass"]["kind"] == "incremental" and status["last_pass"]["outcome"] == "ok"
    assert {"held_deactivations", "quarantined", "pending_hints"} <= status.keys()
    assert main(["history", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert (
        rows
        and {"pass_id", "at", "employee_id", "action", "fields", "outcome", "reason"}
        <= rows[0].keys()
    )
    assert {r["action"] for r in rows} == {"create", "manager"}


def test_held_deactivations_exit_3_and_are_listed_by_status(served, capsys, monkeypatch):
    hibob, _, _ = served
    monkeypatch.setenv("RECONCILER_SYNC__MAX_DEACTIVATIONS", "0")
    assert main(["sync"]) == 0
    leaver = next(
        h
        for h, r in hibob.records.items()
        if r["internal.status"] == "Active" and r["root.email"] and "@" in r["root.email"]
    )
    hibob.terminate(leaver, on=TODAY)
    assert main(["sync"]) == 3
    assert "reconciler release" in capsys.readouterr().out
    main(["status"])
    assert leaver in capsys.readouterr().out
    assert main(["sync", "--allow-deactivations"]) == 0


def test_targeted_sync_by_email(served, capsys):
    hibob, learning, _ = served
    record = next(
        r
        for r in hibob.records.values()
        if r["internal.status"] == "Active" and r["root.email"] and "@" in r["root.email"]
    )
    assert main(["sync", "--employee", record["root.email"].upper()]) == 0
    assert sorted(learning.users_by_mail()) == sorted(
        ["owner@sandbox.test", record["root.email"].strip().lower()]
    )


def test_unknown_setting_is_one_line_naming_it_with_exit_2(served, capsys):
    _, _, folder = served
    (folder / "settings.toml").write_text("[sync]\nintervall_minutes = 5\n")
    assert main(["sync"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "reconciler: setting sync.intervall_minutes: unknown setting"


def test_missing_secret_names_the_environment_variable(served, capsys, monkeypatch):
    monkeypatch.delenv("RECONCILER_LEARNING__CLIENT_SECRET")
    assert main(["sync"]) == 2
    assert "RECONCILER_LEARNING__CLIENT_SECRET" in capsys.readouterr().err


def test_wrong_credentials_fail_with_one_clear_line_and_no_secret(served, capsys, monkeypatch):
    monkeypatch.setenv("RECONCILER_HIBOB__SERVICE_USER_TOKEN", "wrong-token-value")
    assert main(["sync"]) == 1
    captured = capsys.readouterr()
    assert "401" in captured.out + captured.err
    assert "wrong-token-value" not in captured.out + captured.err
    assert "Traceback" not in captured.err


def test_secrets_never_reach_the_database_or_status(served, capsys):
    _, _, folder = served
    assert main(["sync"]) == 0
    main(["status", "--json"])
    text = capsys.readouterr().out
    dump = "\n".join(sqlite3.connect(folder / "cli.db").iterdump())
    for secret in ("sandbox-token", "sandbox-secret"):
        assert secret not in dump and secret not in text


def test_check_passes_with_working_credentials(served, capsys):
    assert main(["check"]) == 0
    assert "FAIL" not in capsys.readouterr().out


def test_check_fails_when_lifecycle_fields_are_hidden(served, capsys):
    hibob, _, _ = served
    hibob.hide_category("lifecycle")
    assert main(["check"]) == 1
    assert "internal.status" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_end_to_end_and_ends_with_nothing_to_do(capsys):
    assert main(["demo", "--size", "60"]) == 0
    out = capsys.readouterr().out
    assert "7. Final pass: nothing left to do" in out
    assert "reactivate 1" in out and "deactivate 1" in out and "update 1" in out
    assert '← template "{work.site} / {work.department}"' in out
    assert 'Cost center (custom field) = "CC-' in out and "Contract end date (custom field)" in out
    # It ends with a preview of a scope change: the cut-offs it would hold, nothing written.
    preview = out.split("11. Preview of a scope change")[1]
    assert "deactivation held" in preview and "limits: CANDIDATE's plan would hold" in preview


def test_while_a_service_holds_the_database_dry_run_works_and_actions_become_requests(
    served, capsys
):
    from reconciler.store.database import Store

    _, _, folder = served
    service = Store(folder / "cli.db")
    service.acquire_instance_lock()
    try:
        assert main(["sync", "--dry-run"]) == 0
        assert main(["resync", "--no-wait"]) == 0
        assert "resync requested (request 1)" in capsys.readouterr().out
        assert service.get_request(1).kind == "resync"
        assert main(["status"]) == 0
        assert "admin request 1 (resync, " in capsys.readouterr().out
    finally:
        service.close()
    assert main(["sync"]) == 0


def test_explain_shows_fields_scope_desired_link_and_next_step(served, capsys, monkeypatch):
    hibob, learning, _ = served
    record = next(
        r
        for r in hibob.records.values()
        if r["internal.status"] == "Active" and r["root.email"] and "@" in r["root.email"]
    )
    hibob_id = record["root.id"]
    condition = '[{"conditions": [{"field": "work.site", "op": "is_not_empty"}]}]'
    monkeypatch.setenv("RECONCILER_SCOPE__GROUPS", condition)
    assert main(["explain", hibob_id]) == 0
    out = capsys.readouterr().out
    assert f"employee {hibob_id}" in out and "work.title" in out
    assert "work.site is_not_empty" in out and "-> true" in out
    assert "desired: active" in out and "link: none yet" in out and "next: create" in out
    assert main(["explain", hibob_id, "--apply"]) == 0
    assert record["root.email"].strip().lower() in learning.users_by_mail()
    capsys.readouterr()
    assert main(["explain", hibob_id]) == 0
    out = capsys.readouterr().out
    assert "next: nothing to do" in out and "create [" in out.split("last actions:")[1]


def test_check_names_a_default_group_that_does_not_exist(served, capsys, monkeypatch):
    monkeypatch.setenv("RECONCILER_LEARNING__DEFAULT_GROUP_ID", "aaaaaaaaaaaaaaaaaaaaaaaa")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL group aaaaaaaaaaaaaaaaaaaaaaaa (learning.default_group_id) does not exist" in out


def test_check_names_a_missing_scope(served, capsys):
    _, learning, _ = served
    learning.scopes.discard("externalIds:read")
    assert main(["check"]) == 1
    assert "externalIds:read" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_keep_leaves_a_database_the_offline_commands_can_read(tmp_path, capsys, monkeypatch):
    kept = tmp_path / "kept"
    assert main(["demo", "--size", "60", "--keep", str(kept)]) == 0
    out = capsys.readouterr().out
    assert "skipped  no email in Hibob" in out  # the dry run shows the skip reasons
    assert "Why is" in out and "scope: out of scope" in out
    assert f"--config {kept / 'settings.toml'} explain --offline" in out
    settings = str(kept / "settings.toml")
    assert main(["--config", settings, "status"]) == 0
    status = capsys.readouterr().out
    assert "last pass #" in status and "skipped employees:" in status
    example = out.split("explain --offline ")[1].split()[0]
    assert main(["--config", settings, "explain", "--offline", example]) == 0
    assert "skipped" in capsys.readouterr().out
