"""CLI output on scripted scenarios: explain, history (by email, --since), skip reasons in
status and history, help for every command and option, --config anywhere, --version, and
a closed pipe. Simulators through httpx.MockTransport (no sockets)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.commands.cli import main
from reconciler.commands.cli_handlers import parse_since
from reconciler.commands.cli_parser import build_parser
from reconciler.commands.wiring import build_pass_context
from reconciler.store.database import Store
from tests.support import NOW, World

FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(tmp_path, size=60)
    for key, value in world.environ.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "settings.toml").write_text("")
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path / "settings.toml"))
    return world


def run_cli(world: World, capsys, *argv: str) -> tuple[int, str]:
    def build(settings, store: Store | None = None):
        return build_pass_context(
            settings,
            hibob_transport=httpx.MockTransport(world.hibob.handle),
            learning_transport=httpx.MockTransport(world.learning.handle),
            store=store,
            sleep=world.time.sleep,
        )

    code = main(list(argv), build=build)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- explain ------------------------------------------------------------------------------------
def test_explain_shows_360learning_now_and_a_hand_edit_as_a_difference(world, capsys) -> None:
    hibob_id = world.active_employees()[0]
    assert run_cli(world, capsys, "sync")[0] == 0
    world.learning.edit_user(world.store.get_entry(hibob_id).learning_user_id, job="Edited By Hand")

    code, out = run_cli(world, capsys, "explain", hibob_id)

    assert code == 0
    assert "360Learning now: active, differs from the last applied state" in out
    assert "job                Edited By Hand in 360Learning," in out
    assert "quarantine: no" in out
    assert "'" not in out.split("last actions:")[0]  # no Python reprs


def test_explain_matches_right_after_a_pass(world, capsys) -> None:
    hibob_id = world.active_employees()[1]
    run_cli(world, capsys, "sync")
    code, out = run_cli(world, capsys, "explain", hibob_id)
    assert "360Learning now: active, matches the last applied state" in out
    assert "next: nothing to do" in out


def test_explain_shows_quarantine_with_until_and_why_and_the_held_deactivation(
    world, capsys
) -> None:
    first, second = world.active_employees()[2:4]
    run_cli(world, capsys, "sync")
    world.store.record_failure(
        first,
        "360Learning rejected mail (mailInvalid)",
        quarantine_after=1,
        quarantined_until=FAR_FUTURE,
        at=NOW,
    )
    world.store.replace_held(
        9,
        [(second, None, "3 deactivations exceed sync.max_deactivations (0); inactive in Hibob")],
        NOW,
    )

    _, out = run_cli(world, capsys, "explain", first)
    assert (
        "quarantine: until 2999-01-01T00:00:00+00:00 after 1 failures: 360Learning rejected"
        " mail (mailInvalid)"
    ) in out
    _, out = run_cli(world, capsys, "explain", second)
    assert "deactivation: held since" in out and "exceed sync.max_deactivations" in out


def test_explain_of_an_unknown_employee_exits_1(world, capsys) -> None:
    code, out = run_cli(world, capsys, "explain", "nobody@nowhere.test")
    assert code == 1
    assert "employee nobody@nowhere.test is unknown" in out


def test_explain_offline_reads_only_the_database(world, capsys) -> None:
    hibob_id = world.active_employees()[4]
    run_cli(world, capsys, "sync")
    before = len(world.hibob.requests) + len(world.learning.requests)

    code, out = run_cli(world, capsys, "explain", "--offline", hibob_id)

    assert code == 0 and "offline: what the database knows" in out
    assert "link: 360Learning user" in out and "create" in out.split("last actions:")[1]
    assert len(world.hibob.requests) + len(world.learning.requests) == before


def test_explain_when_hibob_is_down_still_shows_what_the_database_knows(world, capsys) -> None:
    hibob_id = world.active_employees()[5]
    run_cli(world, capsys, "sync")
    world.hibob.faults.fail_next(100, status=503)

    code, out = run_cli(world, capsys, "explain", hibob_id)

    assert code == 0
    assert "Hibob: cannot read" in out and "link: 360Learning user" in out


# -- skip reasons --------------------------------------------------------------------------------
def test_skip_reasons_reach_history_and_status_once_per_reason(world, capsys) -> None:
    no_email = world.hibob_company_bad("no_email")[0]
    run_cli(world, capsys, "sync")
    run_cli(world, capsys, "sync")

    code, out = run_cli(world, capsys, "history", "--employee", no_email, "--json")
    rows = json.loads(out)
    assert [(r["action"], r["outcome"]) for r in rows] == [("skip", "skipped")]
    assert "email" in rows[0]["reason"]
    _, out = run_cli(world, capsys, "status")
    assert f"  {no_email}  -  {rows[0]['reason']}" in out
    status = json.loads(run_cli(world, capsys, "status", "--json")[1])
    assert no_email in [s["employee_id"] for s in status["skipped"]]


# -- history -------------------------------------------------------------------------------------
def test_history_by_email_finds_the_employee(world, capsys) -> None:
    hibob_id = world.active_employees()[6]
    run_cli(world, capsys, "sync")
    email = world.store.get_entry(hibob_id).email

    code, out = run_cli(world, capsys, "history", "--employee", email.upper())

    assert code == 0
    lines = out.splitlines()
    assert lines and all(f"  {hibob_id}  " in line for line in lines)


def test_history_of_an_unknown_email_is_one_line_and_exit_1(world, capsys) -> None:
    code, out = run_cli(world, capsys, "history", "--employee", "ghost@nowhere.test")
    assert code == 1 and out.startswith("reconciler: employee ghost@nowhere.test is not")


def test_history_since_a_duration_leaves_out_older_rows(world, capsys) -> None:
    run_cli(world, capsys, "sync")
    with world.store.transaction() as conn:
        conn.execute("UPDATE journal SET at = '2020-01-01T00:00:00+00:00'")
    assert run_cli(world, capsys, "history", "--since", "3d") == (0, "")
    code, out = run_cli(world, capsys, "history", "--since", "2019-12-31")
    assert code == 0 and out.count("\n") > 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", "2026-11-28T10:00:00+00:00"),
        ("3d", "2026-11-25T12:00:00+00:00"),
        ("90m", "2026-11-28T10:30:00+00:00"),
        ("1w", "2026-11-21T12:00:00+00:00"),
        ("2026-11-01", "2026-11-01T00:00:00+00:00"),
        ("2026-11-01T09:30", "2026-11-01T09:30:00+00:00"),
        ("2026-11-01 09:30+02:00", "2026-11-01T07:30:00+00:00"),
    ],
)
def test_since_accepts_a_date_a_datetime_or_a_duration(text, expected) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-3d", "2026-13-01", ""])
def test_since_rejects_garbage(text) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--since"):
        parse_since(text, NOW)


def test_history_since_garbage_exits_2_with_one_line(world, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "--since", "last tuesday"])
    assert exit_info.value.code == 2
    assert "--since 'last tuesday': give a date" in capsys.readouterr().err


def test_history_shows_the_whole_trail_and_a_closed_pipe_ends_it_without_a_traceback(
    world, capsys
) -> None:
    world.sync()
    with world.store.transaction() as conn:  # enough rows to overflow a pipe buffer
        conn.executemany(
            "INSERT INTO journal (pass_id, at, hibob_id, action, fields, reason,"
            " outcome) VALUES (1, ?, '1', 'update', '[]', 'padding', 'ok')",
            [(f"2026-11-28T12:{i % 60:02d}:00+00:00",) for i in range(3000)],
        )
    capsys.readouterr()
    assert main(["history", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 3000  # the whole trail, not 1000 rows
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "history"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.readline()
    process.stdout.close()
    process.wait(timeout=30)
    with process.stderr:
        assert b"Traceback" not in process.stderr.read()
    assert process.returncode in (0, 141)


# -- help, --config, --version ---------------------------------------------------------
def every_action(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield "command " + choice.dest, choice.help
            for name, child in action.choices.items():
                for sub in child._actions:
                    yield f"{name} {sub.dest}", sub.help
        else:
            yield action.dest, action.help


def test_every_command_and_option_has_help() -> None:
    missing = [name for name, text in every_action(build_parser()) if not text]
    assert missing == []


def test_config_is_accepted_before_or_after_the_command(
    world, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("RECONCILER_STORE__PATH")
    settings = tmp_path / "other.toml"
    settings.write_text(f'[store]\npath = "{tmp_path / "other.db"}"\n')
    from reconciler.store.database import Store

    Store(tmp_path / "other.db").close()  # status reads a database, never creates one
    for argv in (
        ["--config", str(settings), "status", "--json"],
        ["status", "--json", "--config", str(settings)],
    ):
        code, out = run_cli(world, capsys, *argv)
        assert code == 0 and json.loads(out)["database"] == str(tmp_path / "other.db")


def test_version_prints_the_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("reconciler 0.")


def test_a_date_in_history_since_is_utc_midnight() -> None:
    moment = dt.datetime.fromisoformat(parse_since("2026-11-28", NOW))
    assert moment == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def test_a_changed_skip_reason_is_journalled_again(world, capsys) -> None:
    no_email = world.hibob_company_bad("no_email")[0]
    world.sync()
    world.hibob.update_employee(no_email, **{"root.email": "not-an-email"})
    world.sync()
    world.sync()

    reasons = [r.reason for r in world.store.list_journal(hibob_id=no_email)]
    assert len(reasons) == 2 and reasons[0] != reasons[1]
    assert "email" in reasons[1]


def test_explain_shows_each_value_with_its_rule_and_the_custom_fields_held(
    world, capsys, monkeypatch
) -> None:
    field = "work.custom.field_1644932887286"
    monkeypatch.setenv("RECONCILER_MAPPING__ORGANIZATION", "")
    monkeypatch.setenv(
        "RECONCILER_MAPPING__FIELDS",
        json.dumps({"organization": {"template": "{work.site} / {work.department}"}}),
    )
    monkeypatch.setenv(
        "RECONCILER_MAPPING__CUSTOM_FIELDS",
        json.dumps([{"name": "Cost center", "from": field, "map": {"CC 12": "CC-12"}}]),
    )
    cost = world.learning.add_custom_field("Cost center", "string")
    badge = world.learning.add_custom_field("Badge", "string")
    hibob_id = world.active_employees()[0]
    world.hibob.update_employee(hibob_id, **{field: "CC 12", "work.site": "Paris"})
    assert run_cli(world, capsys, "sync")[0] == 0
    user_id = world.store.get_entry(hibob_id).learning_user_id
    world.learning.set_custom_value(user_id, cost, "edited")
    world.learning.set_custom_value(user_id, badge, "B-1")
    record = world.hibob.records[hibob_id]
    department = world.hibob._labels["department"][record["work.department"]]

    code, out = run_cli(world, capsys, "explain", hibob_id)

    assert code == 0
    assert (
        f'organization = "Paris / {department}"  ← template "{{work.site}} / '
        f'{{work.department}}" (work.site = Paris, work.department = {department})'
    ) in out
    assert (
        f'Cost center (custom field) = "CC-12"  ← from {field} through its map ({field} = CC 12)'
    ) in out
    assert "  Cost center (custom field) = edited (managed)" in out
    assert "  Badge (custom field) = B-1 (not managed: kept)" in out
    assert "Cost center (custom field) edited in 360Learning, CC-12 last applied" in out
    assert "next: update Cost center (custom field) (Cost center (custom field) → CC-12)" in out
    _, offline = run_cli(world, capsys, "explain", "--offline", hibob_id)
    assert "  Cost center (custom field) CC-12" in offline  # the last applied state, by name
