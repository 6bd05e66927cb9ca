"""The connection to the SQLite file: opening (WAL, busy timeout), migrations, transactions, the
instance lock, and SQLite failures turned into one StoreUnusable line.

The table families (`snapshot`, `journal`, `holds`, `hints`) build on it; `Store` joins them.

Plain `sqlite3`, no sqlite-utils (issue 14 asked to use it or say why not). Its writes are safe
inside `transaction()` from 4.0 on (each chunk a savepoint of our `BEGIN IMMEDIATE`; 3.x ran it
in `with conn:`, which COMMITs the open transaction), but every one measured slower than the
`executemany` it would replace: 1.5-1.8x the CPU for 20,000 new source keys (it converts each
value in Python), 4-6x for a one-row upsert (it reads the table list and `PRAGMA table_info`
first); importing it took 57-95 ms of CPU at each command's start. Most other upserts here keep
columns on conflict, count or are conditional, which `upsert_all` cannot say; `rows_where`
yields dicts where the mappers (records.py) take tuples. Migrations stay numbered SQL scripts
counted by `PRAGMA user_version`, as the stored files expect.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, StoreUnusable
from reconciler.store.lock import InstanceLock
from reconciler.store.schema import MIGRATIONS

BUSY_TIMEOUT_SECONDS = 5.0
"""How long a write waits for another writer (a backup, a `sqlite3` shell) before giving up."""


class Database:
    def __init__(
        self, path: str | Path, *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS
    ) -> None:
        self.path = str(path)
        self._busy_timeout_seconds = busy_timeout_seconds
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # Owner-only whatever the umask; SQLite gives its -wal and -shm the same mode.
                # Only a new file is opened here: closing a descriptor of a file SQLite has
                # open would drop its locks.
                try:
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
                except FileExistsError:
                    pass
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"setting store.path: cannot open {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self.instance_lock = InstanceLock(self.path)
        self._live_passes: set[int] = set()  # started by this process and not finished
        self.conn = conn
        try:
            with self._explained_errors():
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
                if self.path != ":memory:":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                # As sqlite-utils set it: the rows a REPLACE deletes fire delete triggers.
                conn.execute("PRAGMA recursive_triggers = ON")
                self._migrate()
        except BaseException:
            conn.close()
            raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreUnusable(
                    f"database {self.path} has schema version {version}, newer than this "
                    f"reconciler knows ({len(MIGRATIONS)}): run the reconciler version that "
                    "wrote it, or restore the backup taken before the upgrade"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._explained_errors():
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:  # a busy or full COMMIT leaves it open: end it here
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _explained_errors(self) -> Iterator[None]:
        """Turn SQLite's file-level failures into one StoreUnusable line naming the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            problem = _describe_sqlite_failure(exc, self.path, self._busy_timeout_seconds)
            if problem is None:
                raise
            raise StoreUnusable(problem) from None

    def close(self) -> None:
        self.release_instance_lock()
        with self._lock:
            self.conn.close()
        self.instance_lock.close()  # after SQLite's: closing it drops no lock of SQLite's

    # -- one active instance per database (reconciler.store.lock) ----------------------------------
    def acquire_instance_lock(self) -> None:
        """Hold the database's instance lock; InstanceLocked if another process has it."""
        self.instance_lock.acquire()

    def release_instance_lock(self) -> None:
        self.instance_lock.release()

    def is_instance_running(self) -> bool:
        """True when a process (this one included) holds this database's instance lock."""
        return self.instance_lock.is_held_elsewhere()

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read, as tuples for a table family's mapper to type."""
        with self._lock, self._explained_errors():
            return self.conn.execute(sql, params).fetchall()


def _describe_sqlite_failure(exc: sqlite3.Error, path: str, busy_seconds: float) -> str | None:
    """One line for a failure of the database file itself; None for anything else (a bug)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (
            f"database {path} is locked by another process (waited {busy_seconds:g} s): stop "
            "the other writer (a second reconciler, a `sqlite3` shell, a backup), then retry"
        )
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return (
            f"database {path} is damaged or not a reconciler database ({exc}): move it aside "
            "and restore the last backup; without one, a new database re-adopts existing "
            "users by email on the next pass"
        )
    if name.startswith(
        ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_FULL")
    ):
        return (
            f"database {path} is not writable ({exc}): check the disk, and that the file "
            "and its folder belong to the user the reconciler runs as"
        )
    return None


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, a trigger's body (semicolons inside) kept whole."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                yield buffer
            buffer = ""
