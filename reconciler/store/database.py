"""Store: the SQLite file behind the reconciler (sqlite-utils, WAL, numbered migrations).

Owns the snapshot (per Hibob employee: the last applied state and the link to its
360Learning user), every email seen per employee, the operation journal, pass history, held
deactivations, hints and admin requests. SQL is written out (transactions and migrations need
it); sqlite-utils reads rows as dicts. Called by reconcile, apply, the CLI and the service;
thread-safe (one connection behind a lock). A damaged, newer, busy or unwritable file is one
StoreUnusable line; the instance lock is `store.lock`'s, only exposed here. Never stores a
secret.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from reconciler.core.models import AppliedState, GroupRole, SnapshotEntry
from reconciler.errors import ConfigError, StoreUnusable
from reconciler.store.lock import InstanceLock

MIGRATIONS = [
    """
    CREATE TABLE employees (
        hibob_id TEXT PRIMARY KEY,
        learning_user_id TEXT,
        email TEXT,
        state TEXT,              -- JSON of the last applied desired state
        state_hash TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        quarantined_until TEXT,
        last_error TEXT,
        updated_at TEXT
    );
    CREATE INDEX employees_learning_user_id ON employees (learning_user_id);
    CREATE TABLE passes (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        is_dry_run INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        counts TEXT,
        error TEXT
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        pass_id INTEGER,
        at TEXT NOT NULL,
        hibob_id TEXT NOT NULL,
        email TEXT,
        action TEXT NOT NULL,
        fields TEXT,
        reason TEXT,
        outcome TEXT NOT NULL,   -- pending | ok | failed | held | skipped
        error TEXT
    );
    CREATE INDEX journal_hibob_id ON journal (hibob_id);
    CREATE TABLE held_deactivations (
        hibob_id TEXT PRIMARY KEY,
        email TEXT,
        reason TEXT,
        pass_id INTEGER,
        held_at TEXT
    );
    CREATE TABLE hints (
        id INTEGER PRIMARY KEY,
        hibob_id TEXT NOT NULL,
        event_type TEXT,
        source TEXT,
        triggered_at TEXT,
        received_at TEXT NOT NULL,
        done_at TEXT
    );
    CREATE INDEX hints_pending ON hints (done_at);
    CREATE TABLE resync_requests (
        id INTEGER PRIMARY KEY,
        requested_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        pass_id INTEGER,
        outcome TEXT
    );
    """,
    """
    CREATE TABLE service_state (key TEXT PRIMARY KEY, value TEXT);
    """,
    """
    CREATE TABLE employee_emails (
        hibob_id TEXT NOT NULL,
        email TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (hibob_id, email)
    );
    CREATE INDEX employee_emails_email ON employee_emails (email);
    ALTER TABLE held_deactivations ADD COLUMN is_releasable INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX journal_action_at ON journal (action, at);
    """,
    # Admin requests generalise resync requests: what to do (kind, JSON args) and how it went.
    """
    CREATE TABLE admin_requests (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,      -- resync | sync | targeted | release | quarantine-clear
        args TEXT NOT NULL DEFAULT '{}',
        requested_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        pass_id INTEGER,
        outcome TEXT,            -- ok | held | errors | failed | refused | cancelled
        detail TEXT
    );
    INSERT INTO admin_requests (id, kind, requested_at, started_at, finished_at, pass_id, outcome)
        SELECT id, 'resync', requested_at, started_at, finished_at, pass_id, outcome
        FROM resync_requests;
    DROP TABLE resync_requests;
    """,
    # Hints are retried with backoff until a pass succeeds for their employee; `decisions`
    # holds, per employee, the latest pass allowed to write to it (passes overlap in the service);
    # every pass, targeted ones too, looks for pending journal rows (close_interrupted).
    """
    ALTER TABLE hints ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE hints ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE hints ADD COLUMN last_error TEXT;
    CREATE TABLE decisions (hibob_id TEXT PRIMARY KEY, pass_id INTEGER NOT NULL);
    CREATE INDEX journal_pending ON journal (outcome) WHERE outcome = 'pending';
    """,
    # state_hash was written and never read.
    """
    ALTER TABLE employees DROP COLUMN state_hash;
    """,
]


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


BUSY_TIMEOUT_SECONDS = 5.0
"""How long a write waits for another writer (a backup, a `sqlite3` shell) before giving up."""


class Store:
    def __init__(
        self, path: str | Path, *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS
    ) -> None:
        self.path = str(path)
        self._busy_timeout_seconds = busy_timeout_seconds
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"setting store.path: cannot open {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self.instance_lock = InstanceLock(self.path)
        self._live_passes: set[int] = set()  # started by this process and not finished
        self.db = sqlite_utils.Database(conn)
        try:
            with self._explained_errors():
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
                if self.path != ":memory:":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
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
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._explained_errors():
            conn = self.db.conn
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
            self.db.conn.close()

    # -- one active instance per database (reconciler.store.lock) ----------------------------------
    def acquire_instance_lock(self) -> None:
        """Hold the database's instance lock; InstanceLocked if another process has it."""
        self.instance_lock.acquire()

    def release_instance_lock(self) -> None:
        self.instance_lock.release()

    def is_instance_running(self) -> bool:
        """True when a process (this one included) holds this database's instance lock."""
        return self.instance_lock.is_held_elsewhere()

    # -- snapshot ---------------------------------------------------------------------------
    def load_snapshot(self) -> dict[str, SnapshotEntry]:
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT hibob_id, learning_user_id, email, state, failures, quarantined_until,"
                " last_error FROM employees"
            ).fetchall()
        return {row[0]: _entry(row) for row in rows}

    def get_entry(self, hibob_id: str) -> SnapshotEntry | None:
        with self._lock:
            row = self.db.conn.execute(
                "SELECT hibob_id, learning_user_id, email, state, failures, quarantined_until,"
                " last_error FROM employees WHERE hibob_id = ?",
                (hibob_id,),
            ).fetchone()
        return _entry(row) if row else None

    def save_applied(
        self,
        hibob_id: str,
        *,
        learning_user_id: str | None,
        email: str | None,
        state: AppliedState | None,
        at: datetime,
    ) -> None:
        """Record a successful apply: the new state, the link, and clear failures."""
        text = state_to_json(state) if state is not None else None
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO employees (hibob_id, learning_user_id, email, state,"
                " failures, quarantined_until, last_error, updated_at)"
                " VALUES (?, ?, ?, ?, 0, NULL, NULL, ?)"
                " ON CONFLICT(hibob_id) DO UPDATE SET learning_user_id = excluded.learning_user_id,"
                " email = excluded.email, state = excluded.state,"
                " failures = 0, quarantined_until = NULL, last_error = NULL,"
                " updated_at = excluded.updated_at",
                (hibob_id, learning_user_id, email, text, utc_text(at)),
            )

    def save_state(self, hibob_id: str, state: AppliedState) -> None:
        """Correct the applied state alone (failures, link and email unchanged)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE employees SET state = ? WHERE hibob_id = ?",
                (state_to_json(state), hibob_id),
            )

    def save_link(
        self, hibob_id: str, learning_user_id: str, email: str | None, at: datetime
    ) -> None:
        """Record the link as soon as it is known, before the rest of the apply finishes."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO employees (hibob_id, learning_user_id, email, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(hibob_id) DO UPDATE SET"
                " learning_user_id = excluded.learning_user_id, email = excluded.email,"
                " updated_at = excluded.updated_at",
                (hibob_id, learning_user_id, email, utc_text(at)),
            )

    def record_failure(
        self,
        hibob_id: str,
        error: str,
        *,
        quarantine_after: int,
        quarantined_until: datetime | None,
        at: datetime,
    ) -> int:
        """Count a failed apply; quarantine from `quarantine_after` failures. Returns the count."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO employees (hibob_id, failures, last_error, updated_at)"
                " VALUES (?, 1, ?, ?) ON CONFLICT(hibob_id) DO UPDATE SET"
                " failures = failures + 1, last_error = excluded.last_error,"
                " updated_at = excluded.updated_at",
                (hibob_id, error, utc_text(at)),
            )
            failures = conn.execute(
                "SELECT failures FROM employees WHERE hibob_id = ?", (hibob_id,)
            ).fetchone()[0]
            if failures >= quarantine_after:
                conn.execute(
                    "UPDATE employees SET quarantined_until = ? WHERE hibob_id = ?",
                    (utc_text(quarantined_until) if quarantined_until else None, hibob_id),
                )
        return int(failures)

    def count_managed(self) -> int:
        """Linked employees whose last applied state is active (the breaker's "managed")."""
        with self._lock:
            return int(
                self.db.conn.execute(
                    "SELECT COUNT(*) FROM employees WHERE learning_user_id IS NOT NULL"
                    " AND json_extract(state, '$.is_active')"
                ).fetchone()[0]
            )

    def list_quarantined(self, now: datetime) -> list[dict[str, Any]]:
        return self._select(
            "SELECT hibob_id AS employee_id, email, last_error AS reason, failures,"
            " quarantined_until AS until FROM employees"
            " WHERE quarantined_until IS NOT NULL AND quarantined_until > ?"
            " ORDER BY hibob_id",
            (utc_text(now),),
        )

    # -- passes and journal -----------------------------------------------------------------
    def start_pass(self, kind: str, at: datetime, *, is_dry_run: bool = False) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO passes (kind, is_dry_run, started_at) VALUES (?, ?, ?)",
                (kind, int(is_dry_run), utc_text(at)),
            )
            pass_id = int(cursor.lastrowid or 0)
            self._live_passes.add(pass_id)
            return pass_id

    def finish_pass(
        self,
        pass_id: int,
        at: datetime,
        outcome: str,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE passes SET finished_at = ?, outcome = ?, counts = ?, error = ?"
                " WHERE id = ?",
                (utc_text(at), outcome, json.dumps(dict(counts), sort_keys=True), error, pass_id),
            )
            self._live_passes.discard(pass_id)

    def list_passes(self, limit: int = 10, *, include_dry_runs: bool = True) -> list[dict]:
        where = "" if include_dry_runs else "WHERE is_dry_run = 0"
        rows = self._select(
            "SELECT id, kind, is_dry_run AS dry_run, started_at, finished_at, outcome, counts,"
            f" error FROM passes {where} ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        for row in rows:
            row["dry_run"], row["counts"] = bool(row["dry_run"]), json.loads(row["counts"] or "{}")
        return rows

    def get_pass(self, pass_id: int) -> dict[str, Any] | None:
        rows = self._select(
            "SELECT id, kind, is_dry_run AS dry_run, started_at, finished_at,"
            " outcome, counts, error FROM passes WHERE id = ?",
            (pass_id,),
        )
        for row in rows:
            row["dry_run"], row["counts"] = bool(row["dry_run"]), json.loads(row["counts"] or "{}")
        return rows[0] if rows else None

    def last_successful_pass_at(self) -> str | None:
        with self._lock:
            row = self.db.conn.execute(
                "SELECT MAX(finished_at) FROM passes WHERE is_dry_run = 0"
                " AND outcome IN ('ok', 'held')"
            ).fetchone()
        return row[0] if row else None

    def journal_start(
        self,
        pass_id: int | None,
        hibob_id: str,
        email: str | None,
        action: str,
        fields: Iterable[str],
        reason: str,
        at: datetime,
    ) -> int:
        """Journal an operation before it is sent (crash safety)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO journal (pass_id, at, hibob_id, email, action, fields, reason,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                (pass_id, utc_text(at), hibob_id, email, action, json.dumps(list(fields)), reason),
            )
            return int(cursor.lastrowid or 0)

    def close_interrupted(self, current_pass_id: int, at: datetime) -> int:
        """Mark what a process that died mid-pass left open: its pass and pending operations.

        Called at the start of a real pass. Only one process writes a database (the instance
        lock), and the passes it is still running (the service runs targeted passes beside a
        long one) are left alone. The pass itself re-derives what is left to do; this keeps
        status and history truthful. Returns how many operations were never confirmed.
        """
        with self.transaction() as conn:
            live = sorted(self._live_passes)
            marks = ",".join("?" * len(live))
            conn.execute(
                "UPDATE passes SET outcome = 'interrupted', finished_at = ?"
                f" WHERE finished_at IS NULL AND is_dry_run = 0 AND id NOT IN ({marks})",
                (utc_text(at), *live),
            )
            cursor = conn.execute(
                "UPDATE journal SET outcome = 'interrupted'"
                " WHERE outcome = 'pending'"
                f" AND (pass_id IS NULL OR pass_id NOT IN ({marks}))",
                live,
            )
            return cursor.rowcount

    def journal_finish(self, journal_id: int, outcome: str, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE journal SET outcome = ?, error = ? WHERE id = ?",
                (outcome, error, journal_id),
            )

    def list_journal(
        self,
        *,
        hibob_id: str | Iterable[str] | None = None,
        since: str | None = None,
        limit: int | None = 1000,
        pass_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Journal rows, oldest first; `limit` None returns them all."""
        clauses: list[str] = []
        params: list[Any] = []
        if hibob_id is not None:
            ids = [hibob_id] if isinstance(hibob_id, str) else list(hibob_id)
            clauses.append(f"hibob_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if pass_id is not None:
            clauses.append("pass_id = ?")
            params.append(pass_id)
        if since:
            clauses.append("at >= ?")
            params.append(since)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._select(
            "SELECT pass_id, at, hibob_id AS employee_id, email, action, fields, outcome, reason,"
            f" error FROM journal {where} ORDER BY id LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        for row in rows:
            row["fields"] = json.loads(row["fields"] or "[]")
        return rows

    # -- held deactivations -----------------------------------------------------------------
    def replace_held(
        self,
        pass_id: int,
        held: Iterable[tuple[str, str | None, str]],
        at: datetime,
        *,
        keep_others: bool = False,
        is_releasable: bool = True,
        done: Iterable[str] = (),
    ) -> None:
        """Record the deactivations a pass held; a targeted pass keeps the other rows.

        `done`: ids no longer waiting (applied or no longer wanted), removed in any case.
        """
        with self.transaction() as conn:
            if not keep_others:
                conn.execute("DELETE FROM held_deactivations")
            conn.executemany(
                "DELETE FROM held_deactivations WHERE hibob_id = ?", [(h,) for h in done]
            )
            conn.executemany(
                "INSERT OR REPLACE INTO held_deactivations (hibob_id, email, reason, pass_id,"
                " held_at, is_releasable) VALUES (?, ?, ?, ?,"
                " COALESCE((SELECT held_at FROM held_deactivations WHERE hibob_id = ?), ?), ?)",
                [(h, e, r, pass_id, h, utc_text(at), int(is_releasable)) for h, e, r in held],
            )

    def list_held_ids(self) -> frozenset[str]:
        """Deactivations a safety limit held, which stay held until an admin releases them."""
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT hibob_id FROM held_deactivations WHERE is_releasable = 1"
            ).fetchall()
        return frozenset(r[0] for r in rows)

    def count_deactivations_since(self, since: datetime) -> int:
        """Deactivations applied since `since` (the breaker's rolling window)."""
        with self._lock:
            row = self.db.conn.execute(
                "SELECT COUNT(*) FROM journal WHERE action = 'deactivate' AND outcome = 'ok'"
                " AND at >= ?",
                (utc_text(since),),
            ).fetchone()
        return int(row[0])

    # -- every email seen for an employee (lookups by a former address) ----------------------
    def save_seen_emails(
        self, current: Mapping[str, str], at: datetime, *, is_complete: bool
    ) -> None:
        """Record each employee's email as read; `is_complete`: everyone was read."""
        known = self.load_known_emails()
        changed = [(h, e) for h, e in current.items() if known.get(h) != e]
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE employee_emails SET is_current = 0 WHERE hibob_id = ?",
                [(h,) for h, _ in changed],
            )
            conn.executemany(
                "INSERT INTO employee_emails (hibob_id, email, first_seen_at, last_seen_at,"
                " is_current) VALUES (?, ?, ?, ?, 1) ON CONFLICT(hibob_id, email) DO UPDATE"
                " SET is_current = 1, last_seen_at = excluded.last_seen_at",
                [(h, e, utc_text(at), utc_text(at)) for h, e in changed],
            )
            if is_complete:
                gone = [(h,) for h in known if h not in current]
                conn.executemany(
                    "UPDATE employee_emails SET is_current = 0 WHERE hibob_id = ?", gone
                )

    def load_known_emails(self) -> dict[str, str]:
        """hibob id -> the email last read for that employee."""
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT hibob_id, email FROM employee_emails WHERE is_current = 1"
            ).fetchall()
        return dict(rows)

    def find_employees_by_email(self, email: str) -> list[str]:
        """Hibob ids that have had `email`, the most recent holder first."""
        wanted = email.strip().lower()
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT hibob_id FROM employee_emails WHERE email = ? UNION ALL"
                " SELECT hibob_id FROM employees WHERE email = ?",
                (wanted, wanted),
            ).fetchall()
            order = self.db.conn.execute(
                "SELECT hibob_id, MAX(last_seen_at) FROM employee_emails WHERE email = ?"
                " GROUP BY hibob_id",
                (wanted,),
            ).fetchall()
        latest = dict(order)
        found = list(dict.fromkeys(r[0] for r in rows))
        return sorted(found, key=lambda h: latest.get(h) or "", reverse=True)

    def list_held(self) -> list[dict[str, Any]]:
        return self._select(
            "SELECT hibob_id AS employee_id, email, reason, pass_id, held_at, is_releasable"
            " FROM held_deactivations ORDER BY hibob_id"
        )

    # -- webhook hints ----------------------------------------------------------------------
    def save_hint(
        self,
        hibob_id: str,
        event_type: str | None,
        source: str | None,
        triggered_at: str | None,
        at: datetime,
    ) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO hints (hibob_id, event_type, source, triggered_at, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (hibob_id, event_type, source, triggered_at, utc_text(at)),
            )
            return int(cursor.lastrowid or 0)

    def list_pending_hints(self, due_at: datetime | None = None) -> list[dict[str, Any]]:
        """Hints not done yet; with `due_at`, only those whose next attempt is due by then."""
        due = "" if due_at is None else " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        return self._select(
            "SELECT id, hibob_id, event_type, received_at, attempts,"
            " next_attempt_at, last_error FROM hints"
            f" WHERE done_at IS NULL{due} ORDER BY id",
            () if due_at is None else (utc_text(due_at),),
        )

    def next_hint_attempt_at(self, after: datetime) -> datetime | None:
        """The earliest retry of a pending hint due after `after` (None: none waits)."""
        with self._lock:
            row = self.db.conn.execute(
                "SELECT MIN(next_attempt_at) FROM hints"
                " WHERE done_at IS NULL AND next_attempt_at > ?",
                (utc_text(after),),
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def record_hint_attempts(
        self, hint_ids: Iterable[int], error: str | None, next_attempt_at: datetime
    ) -> None:
        """Count one failed attempt on each hint and when to try again."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE hints SET attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ? WHERE id = ?",
                [(error, utc_text(next_attempt_at), i) for i in hint_ids],
            )

    def count_pending_hints(self) -> int:
        with self._lock:
            return int(
                self.db.conn.execute("SELECT COUNT(*) FROM hints WHERE done_at IS NULL").fetchone()[
                    0
                ]
            )

    def mark_hints_done(self, hint_ids: Iterable[int], at: datetime) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE hints SET done_at = ? WHERE id = ?", [(utc_text(at), i) for i in hint_ids]
            )

    # -- overlapping passes ----------------------------------------------------------------
    def claim_employee(self, hibob_id: str, pass_id: int) -> bool:
        """Let `pass_id` write to this employee unless a later pass already did (it read Hibob
        later, so its decision is newer). True when the write may go ahead."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO decisions (hibob_id, pass_id) VALUES (?, ?)"
                " ON CONFLICT(hibob_id) DO UPDATE SET pass_id = excluded.pass_id"
                " WHERE decisions.pass_id <= excluded.pass_id",
                (hibob_id, pass_id),
            )
            return cursor.rowcount > 0

    # -- what the running service publishes for `status` --------------------------------------
    def save_service_state(self, values: Mapping[str, str | None]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO service_state (key, value) VALUES (?, ?)",
                list(values.items()),
            )

    def load_service_state(self) -> dict[str, str | None]:
        with self._lock:
            rows = self.db.conn.execute("SELECT key, value FROM service_state").fetchall()
        return dict(rows)

    # -- admin requests (served by the running service) -----------------------------------------
    def save_request(self, kind: str, args: Mapping[str, Any], at: datetime) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO admin_requests (kind, args, requested_at) VALUES (?, ?, ?)",
                (kind, json.dumps(dict(args), sort_keys=True), utc_text(at)),
            )
            return int(cursor.lastrowid or 0)

    def take_requests(self, at: datetime) -> list[dict[str, Any]]:
        """Claim every unstarted request, oldest first (the service carries them out)."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, kind, args FROM admin_requests WHERE started_at IS NULL ORDER BY id"
            ).fetchall()
            conn.executemany(
                "UPDATE admin_requests SET started_at = ? WHERE id = ?",
                [(utc_text(at), row[0]) for row in rows],
            )
        return [{"id": i, "kind": k, "args": json.loads(a or "{}")} for i, k, a in rows]

    def finish_requests(
        self,
        ids: Iterable[int],
        pass_id: int | None,
        outcome: str,
        at: datetime,
        detail: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE admin_requests SET finished_at = ?, pass_id = ?, outcome = ?, detail = ?"
                " WHERE id = ?",
                [(utc_text(at), pass_id, outcome, detail, i) for i in ids],
            )

    def list_open_requests(self) -> list[dict[str, Any]]:
        """Requests not finished yet (waiting for the service, or being carried out)."""
        return self._select(
            "SELECT id, kind, requested_at, started_at FROM admin_requests"
            " WHERE finished_at IS NULL ORDER BY id"
        )

    def get_request(self, request_id: int) -> dict[str, Any] | None:
        rows = self._select(
            "SELECT id, kind, args, requested_at, started_at, finished_at,"
            " pass_id, outcome, detail FROM admin_requests WHERE id = ?",
            (request_id,),
        )
        for row in rows:
            row["args"] = json.loads(row["args"] or "{}")
        return rows[0] if rows else None

    # -- quarantine and skips, as admins see them -------------------------------------------
    def clear_quarantine(self, hibob_ids: Iterable[str] | None, at: datetime) -> list[str]:
        """Lift quarantine (all when `hibob_ids` is None); the next pass retries them.

        Returns the ids that were quarantined and now are not."""
        now = utc_text(at)
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT hibob_id FROM employees WHERE quarantined_until IS NOT NULL"
                " AND quarantined_until > ? ORDER BY hibob_id",
                (now,),
            ).fetchall()
            wanted = None if hibob_ids is None else set(hibob_ids)
            cleared = [r[0] for r in rows if wanted is None or r[0] in wanted]
            conn.executemany(
                "UPDATE employees SET failures = 0, quarantined_until = NULL,"
                " updated_at = ? WHERE hibob_id = ?",
                [(now, h) for h in cleared],
            )
        return cleared

    def record_skips(
        self, pass_id: int, skips: Iterable[tuple[str, str | None, str]], at: datetime
    ) -> list[tuple[str, str | None, str]]:
        """Journal why employees were skipped, once per reason: a row is written only when the
        employee's latest journal row is not the same skip. Quarantined employees are left
        out (quarantine has its own record). Returns the skips written."""
        written = []
        with self.transaction() as conn:
            for hibob_id, email, reason in skips:
                quarantined = conn.execute(
                    "SELECT 1 FROM employees WHERE hibob_id = ? AND quarantined_until > ?",
                    (hibob_id, utc_text(at)),
                ).fetchone()
                last = conn.execute(
                    "SELECT outcome, reason FROM journal WHERE hibob_id = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (hibob_id,),
                ).fetchone()
                if quarantined or (last and tuple(last) == ("skipped", reason)):
                    continue
                conn.execute(
                    "INSERT INTO journal (pass_id, at, hibob_id, email, action, fields, reason,"
                    " outcome) VALUES (?, ?, ?, ?, 'skip', '[]', ?, 'skipped')",
                    (pass_id, utc_text(at), hibob_id, email, reason),
                )
                written.append((hibob_id, email, reason))
        return written

    def list_skipped(self) -> list[dict[str, Any]]:
        """Employees whose latest journal row is a skip: still skipped, with the reason."""
        return self._select(
            "SELECT hibob_id AS employee_id, email, reason, at AS since FROM journal AS j"
            " WHERE outcome = 'skipped' AND id = (SELECT MAX(id) FROM journal"
            " WHERE hibob_id = j.hibob_id) ORDER BY hibob_id"
        )

    def find_employee_ids(self, identifier: str) -> list[str]:
        """Hibob ids known here for an id or any email the employee has had (case-insensitive),
        the most recent holder of an email first."""
        wanted = identifier.strip()
        by_id = self._select(
            "SELECT hibob_id FROM employees WHERE hibob_id = ? UNION"
            " SELECT hibob_id FROM journal WHERE hibob_id = ?",
            (wanted, wanted),
        )
        by_mail = self.find_employees_by_email(wanted) if "@" in wanted else []
        journal = [
            r["hibob_id"]
            for r in self._select(
                "SELECT DISTINCT hibob_id FROM journal WHERE lower(email) = ?", (wanted.lower(),)
            )
        ]
        return list(dict.fromkeys([r["hibob_id"] for r in by_id] + by_mail + journal))

    def _select(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by the (aliased) column names of `sql`."""
        with self._lock, self._explained_errors():
            return list(self.db.query(sql, params))


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


def _entry(row: tuple) -> SnapshotEntry:
    return SnapshotEntry(
        hibob_id=row[0],
        learning_user_id=row[1],
        email=row[2],
        state=state_from_json(row[3]) if row[3] else None,
        failures=row[4] or 0,
        quarantined_until=datetime.fromisoformat(row[5]) if row[5] else None,
        last_error=row[6],
    )


def state_to_json(state: AppliedState) -> str:
    return json.dumps(
        {
            "is_active": state.is_active,
            "attributes": dict(state.attributes),
            "groups": sorted([g.group_id, g.role] for g in state.groups),
            "manager": state.manager,
            "kept_groups": sorted([g.group_id, g.role] for g in state.kept_groups),
            "is_external_id_linked": state.is_external_id_linked,
        },
        sort_keys=True,
    )


def state_from_json(text: str) -> AppliedState:
    raw = json.loads(text)
    return AppliedState(
        is_active=bool(raw.get("is_active")),
        attributes=raw.get("attributes") or {},
        groups=frozenset(GroupRole(g, r) for g, r in raw.get("groups") or []),
        manager=raw.get("manager"),
        kept_groups=frozenset(GroupRole(g, r) for g, r in raw.get("kept_groups") or []),
        # States written before the flag existed were made by create/adopt, which link.
        is_external_id_linked=bool(raw.get("is_external_id_linked", True)),
    )
