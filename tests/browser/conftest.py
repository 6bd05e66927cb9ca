"""The admin page in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium;
Playwright's own browser download cannot work here) against `reconciler run` and both
simulators served on 127.0.0.1. Every test here is marked `browser` (`make test-browser`)."""

from __future__ import annotations

import datetime as dt
import os
import socket
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
from reconciler.service.admin_auth import hash_password

CHROMIUM = Path(os.environ.get("RECONCILER_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("RECONCILER_SCREENSHOTS", REPO / "tests/browser/screenshots"))
PASSWORD = "browser test password"
HOSTILE = "<img src=x onerror=alert(1)>"


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]'"
    return None


SKIP_REASON = _skip_reason()
requires_chromium = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Deployment:
    """Both simulators on loopback and `reconciler run` with its admin page, as a process."""

    def __init__(self, folder: Path, *, idle_minutes: float = 30, size: int = 30) -> None:
        today = dt.date.today()
        self.hibob = HibobSimulator(generate_company(size, seed=18, today=today), today=today)
        self.learning = LearningSimulator(enforce_rate_limits=False)
        self.servers = [serve(self.hibob.handle), serve(self.learning.handle)]
        self.folder = folder
        self.db = folder / "reconciler.db"
        self.webhooks = f"127.0.0.1:{free_port()}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.admin}"
        self.log = folder / "service.log"
        settings = folder / "settings.toml"
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
max_deactivations = 1
max_deactivation_ratio = 1.0

[webhooks]
listen = "{self.webhooks}"

[admin]
listen = "{self.admin}"
session_idle_minutes = {idle_minutes}

[store]
path = "{self.db}"
""",
            encoding="utf-8",
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "RECONCILER_CONFIG": str(settings),
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_WEBHOOKS__UPSERT_SECRET": "browser-upsert-secret",
            "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": "browser-deactivation-secret",
            "RECONCILER_ADMIN__PASSWORD_HASH": hash_password(PASSWORD),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.initial_active = self.active_ids()
        self.hostile_id = self.initial_active[0]

    def start(self) -> Deployment:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run"],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=log,
            )
        wait_for(
            lambda: self.process is None or self.process.poll() is not None or self.is_ready(),
            60,
            "the start-up pass",
        )
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        return self

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"http://{self.webhooks}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def active_ids(self) -> list[str]:
        return [
            r["root.id"]
            for r in self.hibob.records.values()
            if r.get("internal.status") == "Active" and "@" in (r.get("root.email") or "")
        ]

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("admin"))
    deployment.hibob.update_employee(deployment.hostile_id, **{"root.firstName": HOSTILE})
    deployment.start()
    yield deployment
    deployment.close()


def screenshot(page: object, name: str) -> Path:
    """A full-page PNG under tests/browser/screenshots/ (gitignored), to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
