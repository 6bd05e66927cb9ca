"""The store's transactions are whole, and the files today's store writes keep opening.

The crash-safety contract: what one `transaction()` writes (a journal row and its state, or a
bulk save of many rows) commits whole or not at all. sqlite-utils, dropped (store/connection.py),
broke it before 4.0: its writes ran in `with conn:`, which COMMITs the open transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from reconciler.core.models import AppliedState, GroupRole
from reconciler.store.database import MIGRATIONS, Store

NOW = dt.datetime(2026, 12, 3, 18, tzinfo=dt.UTC)
STATE = AppliedState(True, {"job": "Chef"}, frozenset({GroupRole("g1", "learner")}), None,
                     frozenset(), True)  # fmt: skip
DUMP = Path(__file__).parent / "support" / "store_v13.sql"


class Boom(Exception):
    pass


def _count(path: Path, table: str) -> int:
    """Rows another connection sees: only what was committed."""
    with sqlite3.connect(path) as other:
        return int(other.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _abort_on(store: Store, table: str, column: str, value: str) -> None:
    """A trigger failing the statement that writes `value` (the transaction stays open)."""
    with store.transaction() as conn:
        conn.execute(
            f"CREATE TRIGGER boom_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = '{value}'"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )


def test_a_failing_transaction_commits_nothing_early_and_leaves_no_row(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    with pytest.raises(Boom), store.transaction() as conn:
        conn.executemany(
            "INSERT INTO source_keys (hibob_id, source_key) VALUES (?, ?)",
            [(f"e{i}", f"k{i}") for i in range(250)],
        )
        conn.execute(
            "INSERT INTO journal (at, hibob_id, action, outcome) VALUES ('x', 'e1', 'adopt', 'ok')"
        )
        assert conn.in_transaction
        assert _count(path, "source_keys") == 0  # nothing committed yet
        raise Boom
    assert _count(path, "source_keys") == 0
    assert _count(path, "journal") == 0
    assert store.load_source_keys() == {}


def test_the_connection_keeps_the_settings_sqlite_utils_gave_it(tmp_path: Path) -> None:
    """Recursive triggers on (sqlite-utils' default): the rows a REPLACE deletes fire delete
    triggers."""
    store = Store(tmp_path / "s.db")
    assert store.conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1
    assert store.conn.isolation_level is None


def test_a_bulk_save_failing_after_its_first_chunks_leaves_none_of_them(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    _abort_on(store, "source_keys", "hibob_id", "e240")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        store.save_source_keys({f"e{i:03}": f"k{i}" for i in range(300)})
    assert _count(path, "source_keys") == 0
    _abort_on(store, "service_state", "key", "s140")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        store.save_service_state({f"s{i:03}": str(i) for i in range(200)})
    assert _count(path, "service_state") == 0


def test_adoptions_write_their_journal_rows_and_states_whole_or_not_at_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    _abort_on(store, "employees", "hibob_id", "e180")  # after the journal rows were written
    adoptions = [(f"e{i:03}", f"e{i}@x.example", "same email", f"u{i}", STATE) for i in range(200)]
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        store.record_adoptions(5, adoptions, NOW)
    assert (_count(path, "journal"), _count(path, "employees")) == (0, 0)

    store.record_adoptions(5, adoptions[:150], NOW)
    assert (_count(path, "journal"), _count(path, "employees")) == (150, 150)
    entry = store.get_entry("e007")
    assert entry is not None and (entry.learning_user_id, entry.state) == ("u7", STATE)
    [row] = store.list_journal(hibob_id="e007")
    assert (row.action, row.outcome, row.fields, row.reason) == ("adopt", "ok", (), "same email")


def test_an_adoption_clears_failures_and_keeps_other_employees_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.record_failure("7", "boom", quarantine_after=1, quarantined_until=NOW, at=NOW)
    store.save_link("8", "u8", "b@x.example", NOW)
    store.save_source_keys({"8": "k8"})
    store.record_adoption(1, "7", "a@x.example", "same email", learning_user_id="u7", state=STATE,
                          at=NOW)  # fmt: skip
    entry = store.get_entry("7")
    assert entry is not None
    assert (entry.failures, entry.quarantined_until, entry.last_error) == (0, None, None)
    assert (entry.learning_user_id, entry.email, entry.state) == ("u7", "a@x.example", STATE)
    assert store.load_source_keys() == {"8": "k8"}  # another row's write forgets only its own
    store.save_link("8", "u8b", "b2@x.example", NOW)
    linked = store.get_entry("8")
    assert linked is not None and (linked.learning_user_id, linked.email) == ("u8b", "b2@x.example")
    assert store.load_source_keys() == {}


def test_a_database_written_by_todays_store_opens_unchanged_and_takes_new_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(DUMP.read_text())
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    assert len(MIGRATIONS) >= 13

    store = Store(path)
    conn = store.conn
    if len(MIGRATIONS) == 13:  # no migration since: the file is left as it was
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 13
        now = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        assert now == schema
    ada, bo, cy = store.get_entry("1"), store.get_entry("2"), store.get_entry("3")
    assert ada is not None and ada.state is not None and ada.state.manager == "2"
    assert bo is not None and bo.learning_user_id == "u2"
    assert cy is not None and (cy.failures, cy.last_error) == (1, "HTTP 500")
    assert store.load_source_keys() == {"1": "key-1", "2": "key-2"}
    assert store.load_known_emails() == {"1": "ada.l@x.example", "2": "bo@x.example"}
    assert store.find_employees_by_email("ada@x.example") == ["1"]
    assert store.load_service_state() == {
        "next_incremental_at": "2026-12-01T09:15:00+00:00",
        "mode": None,
    }
    assert [h.hibob_id for h in store.list_held()] == ["4"]
    assert [h.hibob_id for h in store.list_pending_hints()] == ["1"]
    assert [r.kind for r in store.list_open_requests()] == ["resync"]
    assert [(j.action, j.outcome) for j in store.list_journal()] == [
        ("create", "ok"),
        ("adopt", "ok"),
        ("update", "pending"),
    ]
    assert store.list_unconfirmed_writes() == ["2"]

    store.save_source_keys({"1": "key-1b", "3": "key-3"})
    store.save_service_state({"mode": "shadow"})
    store.record_adoptions(2, [("5", "di@x.example", "same email", "u5", STATE)], NOW)
    store.close()
    reopened = Store(path)
    assert reopened.load_source_keys() == {"1": "key-1b", "2": "key-2", "3": "key-3"}
    assert reopened.load_service_state()["mode"] == "shadow"
    five = reopened.get_entry("5")
    assert five is not None and five.state == STATE
