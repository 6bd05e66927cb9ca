-- A database as the store of commit 61d7950 wrote it (schema version 13),
-- dumped with sqlite3's iterdump: tests/test_store_atomic.py opens it.
PRAGMA user_version = 13;
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
    , expires_at TEXT);
INSERT INTO "admin_requests" VALUES(1,'resync','{}','2026-12-01T09:00:00+00:00',NULL,NULL,NULL,NULL,NULL,'2036-11-28T09:00:00+00:00');
CREATE TABLE decisions (hibob_id TEXT PRIMARY KEY, pass_id INTEGER NOT NULL);
INSERT INTO "decisions" VALUES('1',1);
CREATE TABLE employee_emails (
        hibob_id TEXT NOT NULL,
        email TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (hibob_id, email)
    );
INSERT INTO "employee_emails" VALUES('1','ada@x.example','2026-12-01T09:00:00+00:00','2026-12-01T09:00:00+00:00',0);
INSERT INTO "employee_emails" VALUES('2','bo@x.example','2026-12-01T09:00:00+00:00','2026-12-01T09:00:00+00:00',1);
INSERT INTO "employee_emails" VALUES('1','ada.l@x.example','2026-12-01T10:00:00+00:00','2026-12-01T10:00:00+00:00',1);
CREATE TABLE employees (
        hibob_id TEXT PRIMARY KEY,
        learning_user_id TEXT,
        email TEXT,
        state TEXT,              -- JSON of the last applied desired state
        failures INTEGER NOT NULL DEFAULT 0,
        quarantined_until TEXT,
        last_error TEXT,
        updated_at TEXT
    );
INSERT INTO "employees" VALUES('1','u1','ada@x.example','{"attributes": {"job": "Chef"}, "groups": [["g1", "learner"]], "is_active": true, "is_external_id_linked": true, "kept_groups": [["g0", "admin"]], "manager": "2"}',0,NULL,NULL,'2026-12-01T09:00:00+00:00');
INSERT INTO "employees" VALUES('2','u2','bo@x.example','{"attributes": {}, "groups": [], "is_active": true, "is_external_id_linked": true, "kept_groups": [], "manager": null}',0,NULL,NULL,'2026-12-01T09:00:00+00:00');
INSERT INTO "employees" VALUES('3',NULL,NULL,NULL,1,'2026-12-02T09:00:00+00:00','HTTP 500','2026-12-01T09:00:00+00:00');
CREATE TABLE held_deactivations (
        hibob_id TEXT PRIMARY KEY,
        email TEXT,
        reason TEXT,
        pass_id INTEGER,
        held_at TEXT
    , is_releasable INTEGER NOT NULL DEFAULT 1);
INSERT INTO "held_deactivations" VALUES('4','cy@x.example','breaker',1,'2026-12-01T09:00:00+00:00',1);
CREATE TABLE hints (
        id INTEGER PRIMARY KEY,
        hibob_id TEXT NOT NULL,
        event_type TEXT,
        source TEXT,
        triggered_at TEXT,
        received_at TEXT NOT NULL,
        done_at TEXT
    , attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_error TEXT, parked_at TEXT, deliveries INTEGER NOT NULL DEFAULT 1);
INSERT INTO "hints" VALUES(1,'1','employee.updated','webhook','2026-12-01T08:59:00+00:00','2026-12-01T09:00:00+00:00',NULL,0,NULL,NULL,NULL,1);
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
    , is_released INTEGER NOT NULL DEFAULT 0);
INSERT INTO "journal" VALUES(1,1,'2026-12-01T09:00:00+00:00','1','ada@x.example','create','["email", "job"]','new','ok',NULL,0);
INSERT INTO "journal" VALUES(2,1,'2026-12-01T09:00:00+00:00','2','bo@x.example','adopt','[]','same email','ok',NULL,0);
INSERT INTO "journal" VALUES(3,1,'2026-12-01T09:00:00+00:00','2','bo@x.example','update','["job"]','changed','pending',NULL,0);
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
INSERT INTO "passes" VALUES(1,'full',0,'2026-12-01T09:00:00+00:00','2026-12-01T09:00:00+00:00','ok','{"adopt": 1, "create": 1}',NULL);
CREATE TABLE service_state (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "service_state" VALUES('next_incremental_at','2026-12-01T09:15:00+00:00');
INSERT INTO "service_state" VALUES('mode',NULL);
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
INSERT INTO "shadow_disagreements" VALUES(1,'2','missing','','bo@x.example','{"job": "Chef"}',NULL,'differs','2026-12-01T09:00:00+00:00','2026-12-01T09:00:00+00:00',1,1,NULL,NULL);
CREATE TABLE source_keys (hibob_id TEXT PRIMARY KEY, source_key TEXT NOT NULL);
INSERT INTO "source_keys" VALUES('1','key-1');
INSERT INTO "source_keys" VALUES('2','key-2');
CREATE INDEX employees_learning_user_id ON employees (learning_user_id);
CREATE INDEX journal_hibob_id ON journal (hibob_id);
CREATE INDEX hints_pending ON hints (done_at);
CREATE INDEX employee_emails_email ON employee_emails (email);
CREATE INDEX journal_action_at ON journal (action, at);
CREATE INDEX journal_pending ON journal (outcome) WHERE outcome = 'pending';
CREATE UNIQUE INDEX hints_one_open ON hints (hibob_id) WHERE done_at IS NULL;
CREATE INDEX hints_by_employee ON hints (hibob_id, triggered_at);
CREATE UNIQUE INDEX shadow_open ON shadow_disagreements (hibob_id, kind, subject)
        WHERE closed_at IS NULL;
CREATE INDEX shadow_hibob_id ON shadow_disagreements (hibob_id);
CREATE INDEX employees_email ON employees (email);
CREATE INDEX employees_manager ON employees (json_extract(state, '$.manager'));
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
