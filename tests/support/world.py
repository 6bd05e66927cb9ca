"""The test `World`: both simulators, real clients through httpx.MockTransport, a real SQLite
file, and a helper to run passes. Shared by the tests; imports no test module."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from reconciler.clients.learning import LearningClient
from reconciler.commands.wiring import build_pass_context
from reconciler.config import Settings, load_settings
from reconciler.passes.context import PassContext
from reconciler.passes.reconcile import PassResult, run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.store.database import Store
from tests.support.clocks import FakeTime

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def sandbox_environ(learning: LearningSimulator, db: Path, **extra: str) -> dict[str, str]:
    env = {
        "RECONCILER_HIBOB__BASE_URL": "http://hibob.test/v1",
        "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
        "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
        "RECONCILER_LEARNING__BASE_URL": "http://learning.test",
        "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
        "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
        "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": "100000",
        "RECONCILER_LEARNING__MAX_READS_PER_SECOND": "100000",
        "RECONCILER_SYNC__MAX_DEACTIVATIONS": "1000",
        "RECONCILER_SYNC__MAX_DEACTIVATION_RATIO": "1",
        "RECONCILER_STORE__PATH": str(db),
    }
    env.update(extra)
    return env


class World:
    """Both simulators, the settings, and a helper to run passes."""

    def __init__(self, tmp_path: Path, size: int = 60, seed: int = 7, **settings: str) -> None:
        self.company = generate_company(size, seed=seed, today=TODAY)
        self.hibob = HibobSimulator(self.company, today=TODAY)
        # The 360Learning simulator's seconds move only when a client sleeps (bulk jobs run
        # as the client waits for them), so nothing in a test waits or spins in real time.
        self.time = FakeTime()
        self.learning = LearningSimulator(
            enforce_rate_limits=False, now=lambda: self.now, clock=self.time
        )
        self.now = NOW
        self.slept: list[float] = self.time.sleeps
        self.db = tmp_path / "reconciler.db"
        self.environ = sandbox_environ(self.learning, self.db, **settings)
        self.settings: Settings = load_settings(environ=self.environ, read_file=False)
        self.store = Store(self.db)
        self.services = self.build()

    def build(self, **overrides: str) -> PassContext:
        if overrides:
            self.settings = load_settings(environ={**self.environ, **overrides}, read_file=False)
        # Throttles and retry backoffs never really wait in tests.
        return build_pass_context(
            self.settings,
            hibob_transport=httpx.MockTransport(self.hibob.handle),
            learning_transport=httpx.MockTransport(self.learning.handle),
            store=self.store,
            sleep=self.time.sleep,
        )

    def route_learning_through(self, handler) -> None:
        """Send 360Learning traffic through `handler` (which may call the simulator)."""
        self.services.learning = LearningClient(
            self.settings.learning,
            transport=httpx.MockTransport(handler),
            sleep=self.time.sleep,
        )

    def sync(self, kind: str = "incremental", **kwargs) -> PassResult:
        return run_pass(self.services, kind, now=self.now, **kwargs)

    def learning_writes(self) -> list[tuple[str, str, int]]:
        return [r for r in self.learning.requests if r[0] != "GET" and "oauth2" not in r[1]]

    def hibob_company_bad(self, kind: str) -> list[str]:
        return list(self.company.bad_records.get(kind, []))

    def user_of(self, hibob_id: str) -> dict | None:
        entry = self.store.get_entry(hibob_id)
        if entry is None or entry.learning_user_id is None:
            return None
        return self.learning.user(entry.learning_user_id)

    def active_employees(self) -> list[str]:
        """Employees with a valid, unique email who have access or are hired (prehire)."""
        records = self.hibob.records.values()
        mails = [(r.get("root.email") or "").strip().lower() for r in records]
        return [
            r["root.id"]
            for r in records
            if (
                r.get("internal.status") == "Active" or r.get("internal.lifecycleStatus") == "hired"
            )
            and r.get("root.email")
            and "@" in r["root.email"]
            and mails.count(r["root.email"].strip().lower()) == 1
        ]
