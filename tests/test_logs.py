"""Log lines as journald and a log shipper read them (reconciler.commands.logs)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from reconciler.commands.logs import configure_logging


@pytest.fixture
def log_file(tmp_path: Path):
    """A file stream for the root handler; the previous logging setup is restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(tmp_path / "out.log", "w+", encoding="utf-8") as stream:
        yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def journal_environ(stream) -> dict[str, str]:
    info = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


def lines_of(stream) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_lines_to_the_journal_carry_the_syslog_priority_prefix(log_file):
    configure_logging(logging.DEBUG, log_file, environ=journal_environ(log_file))
    log = logging.getLogger("reconciler.test")

    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")

    prefixes = [line[:3] for line in lines_of(log_file)]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>"]
    assert json.loads(lines_of(log_file)[2][3:])["message"] == "w"


def test_lines_to_a_plain_pipe_are_bare_json_without_a_prefix(log_file):
    configure_logging(logging.INFO, log_file, environ={"JOURNAL_STREAM": "1:2"})
    logging.getLogger("reconciler.test").warning("w")

    (line,) = lines_of(log_file)
    assert json.loads(line)["level"] == "warning"


def test_extra_values_become_json_fields_with_their_types_kept(log_file):
    configure_logging(logging.INFO, log_file, environ={})
    logging.getLogger("reconciler.test").info(
        "incremental pass 4: ok",
        extra={
            "pass_id": 4,
            "counts": {"create": 2, "update": 1},
            "employee_id": "3332",
            "event_type": "employee.updated",
        },
    )

    line = json.loads(lines_of(log_file)[0])
    assert line["message"] == "incremental pass 4: ok"
    assert line["pass_id"] == 4 and line["counts"] == {"create": 2, "update": 1}
    assert line["employee_id"] == "3332" and line["event_type"] == "employee.updated"


def test_a_failed_pass_is_an_error_and_a_held_pass_a_warning_in_the_log(tmp_path, log_file):
    from conftest import World

    world = World(tmp_path, size=20, **{"RECONCILER_SYNC__MAX_DEACTIVATIONS": "0"})
    configure_logging(logging.INFO, log_file, environ={})
    world.sync()
    leaver = next(h for h in world.active_employees() if world.user_of(h))
    world.hibob.terminate(leaver, on=world.hibob.today)
    world.sync()
    world.hibob.faults.fail_next(10, 401, None)
    world.sync()

    finals = [json.loads(line) for line in lines_of(log_file)]
    finals = [
        line
        for line in finals
        if line.get("logger") == "reconciler.passes.reconcile"
        and line.get("outcome") in ("ok", "held", "failed")
    ]
    assert [(line["outcome"], line["level"]) for line in finals] == [
        ("ok", "info"),
        ("held", "warning"),
        ("failed", "error"),
    ]
    assert finals[0]["counts"] and "{" not in finals[0]["message"]


def test_a_configuration_error_at_service_start_is_one_json_line(tmp_path, capsys):
    from reconciler.commands.cli import main

    settings = tmp_path / "settings.toml"
    settings.write_text("[sync]\nintervall_minutes = 5\n")
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        assert main(["--config", str(settings), "run"]) == 2
    finally:
        root.handlers[:] = saved
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and record["exit_code"] == 2
    assert record["message"] == "setting sync.intervall_minutes: unknown setting"


def test_terminal_lines_show_the_counts_after_the_message():
    from reconciler.commands.logs import HumanFormatter

    record = logging.makeLogRecord(
        {
            "msg": "incremental pass 4: ok",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "counts": {"create": 2, "update": 1},
        }
    )

    assert HumanFormatter().format(record).endswith("incremental pass 4: ok (create 2, update 1)")
