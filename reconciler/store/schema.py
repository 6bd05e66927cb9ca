"""The database's schema: numbered migrations, applied in order by `store.connection`.

A migration is appended, never edited: `PRAGMA user_version` says how many ran.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
    # Deactivations an admin released leave the breaker's rolling window (product §3).
    """
    ALTER TABLE journal ADD COLUMN is_released INTEGER NOT NULL DEFAULT 0;
    """,
    # A request carries the deadline of the command waiting for it: past it, or once the
    # command gave up, it is never carried out (outcome expired). Rows without one expire.
    """
    ALTER TABLE admin_requests ADD COLUMN expires_at TEXT;
    """,
    # A hint retried a bounded number of times is parked until the next full pass (issue 15).
    """
    ALTER TABLE hints ADD COLUMN parked_at TEXT;
    """,
    # One open hint per employee (product §3): a replayed delivery is coalesced into it and
    # counted; older open duplicates are closed as covered by the newest.
    """
    ALTER TABLE hints ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 1;
    UPDATE hints SET done_at = received_at WHERE done_at IS NULL
        AND id NOT IN (SELECT MAX(id) FROM hints WHERE done_at IS NULL GROUP BY hibob_id);
    CREATE UNIQUE INDEX hints_one_open ON hints (hibob_id) WHERE done_at IS NULL;
    CREATE INDEX hints_by_employee ON hints (hibob_id, triggered_at);
    """,
    # Shadow mode: each disagreement between the desired state and 360Learning, by employee,
    # kind and subject (a field name for `fields`), open until a pass no longer sees it.
    """
    CREATE TABLE shadow_disagreements (
        id INTEGER PRIMARY KEY,
        hibob_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        email TEXT,
        wanted TEXT,             -- JSON
        holds TEXT,              -- JSON
        reason TEXT,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        first_pass_id INTEGER,
        last_pass_id INTEGER,
        closed_at TEXT,
        closed_by TEXT           -- gone | applied
    );
    CREATE UNIQUE INDEX shadow_open ON shadow_disagreements (hibob_id, kind, subject)
        WHERE closed_at IS NULL;
    CREATE INDEX shadow_hibob_id ON shadow_disagreements (hibob_id);
    """,
    # A targeted pass reads its employee's rows only: who shares the email, whose manager
    # the employee is (issue 20).
    """
    CREATE INDEX employees_email ON employees (email);
    CREATE INDEX employees_manager ON employees (json_extract(state, '$.manager'));
    """,
    # Per employee, the source key of the last pass that planned nothing for it
    # (core.fingerprint); any change to the employee's row forgets it, so a stored key always
    # belongs to the row beside it (issue 20).
    """
    CREATE TABLE source_keys (hibob_id TEXT PRIMARY KEY, source_key TEXT NOT NULL);
    CREATE TRIGGER employees_insert_forgets_source_key AFTER INSERT ON employees
    BEGIN
        DELETE FROM source_keys WHERE hibob_id = NEW.hibob_id;
    END;
    CREATE TRIGGER employees_update_forgets_source_key AFTER UPDATE ON employees
    BEGIN
        DELETE FROM source_keys WHERE hibob_id = NEW.hibob_id OR hibob_id = OLD.hibob_id;
    END;
    CREATE TRIGGER employees_delete_forgets_source_key AFTER DELETE ON employees
    BEGIN
        DELETE FROM source_keys WHERE hibob_id = OLD.hibob_id;
    END;
    """,
]


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
