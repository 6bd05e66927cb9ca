"""The SQLite store: migrations, WAL, the instance lock, and what it keeps."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from reconciler.core.models import AppliedState, GroupRole
from reconciler.errors import InstanceLocked, StoreUnusable
from reconciler.store.database import MIGRATIONS, Store

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def test_a_new_database_is_fully_migrated_and_in_wal_mode(tmp_path) -> None:
    store = Store(tmp_path / "new.db")
    conn = store.conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_database_is_upgraded_in_place_keeping_its_data(tmp_path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in filter(str.strip, MIGRATIONS[0].split(";")):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO employees (hibob_id, learning_user_id) VALUES ('7', 'u7')")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.get_entry("7").learning_user_id == "u7"
    store.save_service_state({"next_incremental_at": "x"})
    assert store.load_service_state() == {"next_incremental_at": "x"}


def test_applied_state_round_trips_and_a_success_clears_failures(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    store.record_failure(
        "7", "boom", quarantine_after=1, quarantined_until=NOW + dt.timedelta(hours=1), at=NOW
    )
    assert [q.hibob_id for q in store.list_quarantined(NOW)] == ["7"]
    assert store.get_entry("7").is_quarantined(NOW)
    state = AppliedState(
        is_active=True,
        attributes={"job": "x"},
        groups=frozenset({GroupRole("g1", "learner")}),
        manager="9",
        kept_groups=frozenset({GroupRole("g0", "admin")}),
        is_external_id_linked=True,
    )
    store.save_applied("7", learning_user_id="u7", email="a@b.example", state=state, at=NOW)
    entry = store.get_entry("7")
    assert entry.state == state
    assert entry.failures == 0 and store.list_quarantined(NOW) == []


def test_only_one_process_holds_the_instance_lock(tmp_path) -> None:
    first, second = Store(tmp_path / "l.db"), Store(tmp_path / "l.db")
    assert not second.is_instance_running()
    first.acquire_instance_lock()
    assert second.is_instance_running()
    with pytest.raises(InstanceLocked, match="already running"):
        second.acquire_instance_lock()
    first.close()
    second.acquire_instance_lock()
    second.close()


def test_an_unwritable_path_is_a_settings_error_naming_store_path(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="store.path"):
        Store(blocker / "sub" / "x.db")


# -- database and lock problems: one line naming the path and what to do, exit 2 ---------------
def test_a_corrupt_database_file_is_an_error_naming_the_path_and_what_to_do(tmp_path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an SQLite file, just some text " * 200)

    with pytest.raises(StoreUnusable) as caught:
        Store(path)

    assert str(path) in str(caught.value) and "backup" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_database_from_a_newer_reconciler_is_refused_and_left_unchanged(tmp_path) -> None:
    path = tmp_path / "newer.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()

    with pytest.raises(StoreUnusable, match=f"{path}.*newer") as caught:
        Store(path)

    assert caught.value.exit_code == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1


def test_a_database_another_writer_holds_too_long_is_an_error_naming_it(tmp_path) -> None:
    path = tmp_path / "busy.db"
    store = Store(path, busy_timeout_seconds=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnusable, match=f"{path}.*locked by another"):
            store.start_pass("full", NOW)
        with pytest.raises(StoreUnusable, match=f"{path}.*locked by another"):
            Store(path, busy_timeout_seconds=0.1)
    finally:
        other.execute("ROLLBACK")
    assert store.start_pass("full", NOW) > 0


def test_7_the_lock_follows_the_database_file_not_a_path(tmp_path) -> None:
    # Issue 15 item 7: a second `reconciler run` through a symlink, or after the pid file was
    # deleted, started and did the first sync again.
    import subprocess
    import sys
    import textwrap

    real = tmp_path / "real.db"
    Store(real).close()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from reconciler.store.database import Store
                store = Store({str(real)!r}); store.acquire_instance_lock()
                print("held", flush=True); time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for path in (link, real):
            store = Store(path)
            with pytest.raises(InstanceLocked, match=str(holder.pid)):
                store.acquire_instance_lock()
            store.close()
        (tmp_path / "real.db.lock").unlink()  # the pid file is for messages only
        other = Store(link)
        with pytest.raises(InstanceLocked):
            other.acquire_instance_lock()
        assert other.is_instance_running()
        other.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
    after = Store(link)
    after.acquire_instance_lock()  # the kernel dropped the dead holder's lock
    after.close()


@pytest.mark.parametrize("damage", ["corrupt", "newer", "lock_directory"])
def test_the_cli_reports_a_database_problem_in_one_line_with_exit_2(
    damage, tmp_path, capsys
) -> None:
    from reconciler.commands.cli import main

    path = tmp_path / "r.db"
    if damage == "corrupt":
        path.write_bytes(b"\x00garbage" * 1000)
    elif damage == "newer":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 999")
        conn.commit()
        conn.close()
    else:
        (tmp_path / "r.db.lock").mkdir()
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[store]\npath = "{path}"\n', encoding="utf-8")

    code = main(["--config", str(settings), "status"])

    err = capsys.readouterr().err
    assert (code, err.count("\n"), "Traceback" in err) == (2, 1, False)
    assert str(path) in err


def test_every_listing_hands_out_frozen_records_never_dict_rows(tmp_path) -> None:
    from dataclasses import FrozenInstanceError, fields

    from reconciler.core.vocabulary import ActionKind, ActionOutcome, PassKind, PassOutcome
    from reconciler.store import records

    store = Store(tmp_path / "r.db")
    pass_id = store.start_pass(PassKind.FULL, NOW)
    store.finish_pass(pass_id, NOW, PassOutcome.HELD, {"create": 1})
    store.journal_start(pass_id, "7", "a@b.example", "create", ["mail"], "new hire", NOW)
    store.replace_held(pass_id, [("8", None, "too many leavers")], NOW)
    store.record_failure(
        "9", "boom", quarantine_after=1, quarantined_until=NOW + dt.timedelta(hours=1), at=NOW
    )
    store.record_skips(pass_id, [("10", None, "no email")], NOW)
    store.save_hint("11", "employee.updated", "upsert", None, NOW)
    store.save_hint("12", "employee.updated", "upsert", None, NOW)
    [_, parked] = store.list_pending_hints()
    store.park_hints([parked.id], "403", NOW + dt.timedelta(days=1))
    request_id = store.save_request("resync", {}, NOW, expires_at=NOW + dt.timedelta(hours=1))
    store.save_request("sync", {}, NOW, expires_at=NOW + dt.timedelta(hours=1))
    [taken, _] = store.take_requests(NOW)

    listings = {
        records.PassRecord: [*store.list_passes(), store.get_pass(pass_id)],
        records.JournalRecord: store.list_journal(),
        records.HeldDeactivation: store.list_held(),
        records.QuarantinedEmployee: store.list_quarantined(NOW),
        records.SkippedEmployee: store.list_skipped(),
        records.HintRecord: [*store.list_pending_hints(), *store.list_parked_hints()],
        records.RequestRecord: [taken, *store.list_open_requests(), store.get_request(request_id)],
    }
    for kind, rows in listings.items():
        assert rows and all(type(row) is kind for row in rows), kind
        with pytest.raises(FrozenInstanceError):
            setattr(rows[0], fields(rows[0])[0].name, None)
    [journal] = store.list_journal(hibob_id="7")
    assert (journal.hibob_id, journal.action, journal.outcome) == (
        "7",
        ActionKind.CREATE,
        ActionOutcome.PENDING,
    )
    assert journal.fields == ("mail",)
    [done] = store.list_passes()
    assert (done.kind, done.outcome, done.counts) == (
        PassKind.FULL,
        PassOutcome.HELD,
        {"create": 1},
    )
    assert [h.hibob_id for h in store.list_parked_hints()] == ["12"]
    assert taken.kind == "resync" and taken.started_at is not None


def test_status_json_shows_the_records_under_the_keys_it_always_had(tmp_path) -> None:
    from reconciler.core.vocabulary import PassKind

    store = Store(tmp_path / "r.db")
    pass_id = store.start_pass(PassKind.INCREMENTAL, NOW, is_dry_run=True)
    store.finish_pass(pass_id, NOW, "dry-run", {})
    store.journal_start(pass_id, "7", None, "update", ["job"], "changed", NOW)
    store.replace_held(pass_id, [("8", "x@b.example", "too many leavers")], NOW)
    store.record_failure("9", "boom", quarantine_after=1, quarantined_until=NOW, at=NOW)
    store.record_skips(pass_id, [("10", None, "no email")], NOW)
    assert store.list_passes()[0].as_json() == {
        "id": pass_id,
        "kind": "incremental",
        "dry_run": True,
        "started_at": "2026-11-28T12:00:00+00:00",
        "finished_at": "2026-11-28T12:00:00+00:00",
        "outcome": "dry-run",
        "counts": {},
        "error": None,
    }
    assert store.list_journal()[0].as_json() == {
        "pass_id": pass_id,
        "at": "2026-11-28T12:00:00+00:00",
        "employee_id": "7",
        "email": None,
        "action": "update",
        "fields": ["job"],
        "outcome": "pending",
        "reason": "changed",
        "error": None,
    }
    assert [h.as_json() for h in store.list_held()] == [
        {
            "employee_id": "8",
            "email": "x@b.example",
            "reason": "too many leavers",
            "pass_id": pass_id,
            "held_at": "2026-11-28T12:00:00+00:00",
            "is_releasable": 1,
        }
    ]
    assert [q.as_json() for q in store.list_quarantined(NOW - dt.timedelta(seconds=1))] == [
        {
            "employee_id": "9",
            "email": None,
            "reason": "boom",
            "failures": 1,
            "until": "2026-11-28T12:00:00+00:00",
        }
    ]
    assert [s.as_json() for s in store.list_skipped()] == [
        {
            "employee_id": "10",
            "email": None,
            "reason": "no email",
            "since": "2026-11-28T12:00:00+00:00",
        }
    ]
