"""`reconciler run` as a real process against both simulators served on 127.0.0.1: start-up
convergence, webhook hints applied within seconds, signature checks, `reconciler resync`, the
instance lock, SIGTERM, and hints that survive a restart."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from reconciler.store.database import Store

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
UPSERT_SECRET = "e2e-upsert-secret"
DEACTIVATION_SECRET = "e2e-deactivation-secret"
HINT_DEADLINE_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until `condition()` is truthy; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


class Deployment:
    """Both simulators on loopback, a settings file, and the real CLI as subprocesses."""

    def __init__(self, tmp_path: Path) -> None:
        today = dt.date.today()
        self.hibob = HibobSimulator(generate_company(30, seed=11, today=today), today=today)
        self.learning = LearningSimulator(enforce_rate_limits=False)
        self.servers = [serve(self.hibob.handle), serve(self.learning.handle)]
        self.db = tmp_path / "state" / "reconciler.db"
        self.port = free_port()
        self.receiver = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "service.log"
        settings = tmp_path / "settings.toml"
        settings.write_text(
            f"""
[hibob]
base_url = "{self.servers[0].url}/v1"

[learning]
base_url = "{self.servers[1].url}"
default_group_id = "{self.learning.root_group_id}"
max_writes_per_second = 1000
max_reads_per_second = 1000

[sync]
interval_minutes = 60
max_deactivations = 1000
max_deactivation_ratio = 1.0

[webhooks]
listen = "127.0.0.1:{self.port}"

[store]
path = "{self.db}"
""",
            encoding="utf-8",
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "RECONCILER_CONFIG": str(settings),
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_WEBHOOKS__UPSERT_SECRET": UPSERT_SECRET,
            "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": DEACTIVATION_SECRET,
        }
        self.cwd = tmp_path
        self.processes: list[subprocess.Popen] = []

    # -- processes -------------------------------------------------------------------------
    def start(self, wait_ready: bool = True) -> subprocess.Popen:
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run"],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=log,
            )
        self.processes.append(process)
        if not wait_ready:
            return process
        wait_for(
            lambda: process.poll() is not None or self.is_ready(),
            30,
            "the start-up pass to make the service ready",
        )
        assert process.poll() is None, f"service exited {process.returncode}: {self.tail()}"
        return process

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def terminate(self, process: subprocess.Popen) -> tuple[int, float]:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        return code, time.monotonic() - started

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for server in self.servers:
            server.stop()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # -- observations ----------------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            return (
                httpx.get(f"{self.receiver}/readyz", timeout=1.0, trust_env=False).status_code
                == 200
            )
        except httpx.TransportError:
            return False

    def expected_active(self) -> list[str]:
        """Employees with access and a valid, unique email: each must have an active user."""
        records = self.hibob.records.values()
        mails = [(r.get("root.email") or "").strip().lower() for r in records]
        return [
            r["root.id"]
            for r, mail in zip(records, mails, strict=True)
            if r.get("internal.status") == "Active" and "@" in mail and mails.count(mail) == 1
        ]

    def mail_of(self, hibob_id: str) -> str:
        return self.hibob.records[hibob_id]["root.email"].strip().lower()

    def user_of(self, hibob_id: str) -> dict | None:
        return self.learning.users_by_mail().get(self.mail_of(hibob_id))

    def is_converged(self) -> bool:
        users = self.learning.users_by_mail()
        return all(
            users.get(self.mail_of(h), {}).get("status") == "active" for h in self.expected_active()
        )

    def count_hints(self, pending_only: bool = False) -> int:
        where = " WHERE done_at IS NULL" if pending_only else ""
        with sqlite3.connect(self.db) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM hints{where}").fetchone()[0]

    def passes(self) -> list[tuple[int, str, str | None]]:
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(self.db) as conn:
                return conn.execute("SELECT id, kind, outcome FROM passes ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the service has not created its tables yet
            return []

    def deliver(self, hibob_id: str, secret: str = UPSERT_SECRET) -> httpx.Response:
        return self.hibob.deliver_webhook(
            f"{self.receiver}/webhooks/hibob/upsert",
            "employee.updated",
            hibob_id,
            secret,
            field_updates=["work.title"],
        )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()


def test_run_converges_applies_hints_in_seconds_repairs_drift_and_stops_on_sigterm(
    deployment: Deployment,
) -> None:
    service = deployment.start()
    wait_for(deployment.is_converged, 10, "every active employee to have an active user")
    alice, bob, carol = deployment.expected_active()[1:4]

    deployment.hibob.update_employee(alice, **{"work.title": "Chief Webhook Officer"})
    started = time.monotonic()
    assert deployment.deliver(alice).status_code == 200
    wait_for(
        lambda: deployment.user_of(alice).get("job") == "Chief Webhook Officer",
        10,
        "the hinted title change in 360Learning",
    )
    latency = time.monotonic() - started
    print(f"\nwebhook-to-360Learning latency: {latency:.3f} s")
    assert latency < HINT_DEADLINE_SECONDS, deployment.tail()

    hints_before = deployment.count_hints()
    deployment.hibob.update_employee(bob, **{"work.title": "Forged Title"})
    assert deployment.deliver(bob, secret="not-the-secret").status_code == 401
    time.sleep(1.5)
    assert deployment.user_of(bob).get("job") != "Forged Title"
    assert deployment.count_hints() == hints_before

    deployment.learning.edit_user(deployment.user_of(carol)["_id"], job="Edited by hand")
    started = time.monotonic()
    resync = deployment.cli("resync")
    print(f"resync through the running service: {time.monotonic() - started:.3f} s")
    assert resync.returncode == 0, resync.stdout + resync.stderr
    assert "full pass" in resync.stdout and ": ok" in resync.stdout
    assert deployment.user_of(carol)["job"] != "Edited by hand"
    assert deployment.user_of(bob)["job"] == "Forged Title"  # the full pass re-read Hibob

    second = deployment.cli("run", timeout=30)
    assert second.returncode == 2
    assert "already running" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr

    code, seconds = deployment.terminate(service)
    print(f"SIGTERM to exit: {seconds:.3f} s")
    assert code == 0, deployment.tail()
    assert seconds < 10


def test_restart_processes_hints_left_pending(deployment: Deployment) -> None:
    deployment.terminate(deployment.start())
    dave = deployment.expected_active()[5]
    store = Store(deployment.db)
    store.save_hint(dave, "employee.updated", "upsert", None, dt.datetime.now(dt.UTC))
    store.close()
    deployment.hibob.update_employee(dave, **{"work.title": "Back After Restart"})
    last_pass_before = deployment.passes()[-1][0]

    service = deployment.start()
    wait_for(
        lambda: deployment.count_hints(pending_only=True) == 0,
        10,
        "the pending hint to be processed",
    )

    assert deployment.user_of(dave)["job"] == "Back After Restart"
    assert any(
        kind == "targeted" and number > last_pass_before for number, kind, _ in deployment.passes()
    )
    assert deployment.terminate(service)[0] == 0


def test_sigterm_during_a_long_pass_still_exits_0_within_the_grace_period(
    deployment: Deployment,
) -> None:
    deployment.env["RECONCILER_SYNC__SHUTDOWN_GRACE_SECONDS"] = "2"
    deployment.hibob.faults.latency_seconds = 15.0
    service = deployment.start(wait_ready=False)
    wait_for(deployment.passes, 15, "the start-up pass to begin")

    code, seconds = deployment.terminate(service)

    print(f"\nSIGTERM to exit with a pass in flight: {seconds:.3f} s")
    assert code == 0, deployment.tail()
    assert 2 <= seconds < 4
    assert deployment.passes()[-1][2] is None  # left unfinished; the next start converges
    assert "pass still running" in deployment.tail()
