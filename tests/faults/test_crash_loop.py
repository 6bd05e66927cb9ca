"""Crash loop: the real `reconciler run` and `reconciler sync` (the venv's console script) are
killed with SIGKILL at random moments of their passes, during a large first sync and then
during HR churn, and restarted; at least 50 kills. Afterwards the end state equals the desired
state: nobody created twice, no link missing (external ids and manager links included), no
change lost, and the database passes `PRAGMA integrity_check` after every kill.

The loop runs once per module (it takes a minute or two); each test asserts one property of
its outcome. Kill moments come from the suite seed: fixed under CI, random locally (printed).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faults.churn import apply_churn
from faults.conftest import note, record_figure, suite_seed
from faults.oracle import find_differences, find_duplicates, integrity
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

# The loop runs in the first test's setup: minutes on a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]

COMPANY_SIZE = 500
MIN_KILLS = 50
MAX_ROUNDS = 160
CHURN_PER_ROUND = (3, 12)
WRITE_LATENCY_SECONDS = 0.004
"""Slows 360Learning a little, so a pass lasts long enough for kills to land inside it."""
LINK_WORDS = (": external id", ": database links", ": managers")


def console_script() -> str:
    script = Path(sys.executable).parent / "reconciler"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (install with `make test`)")
    return str(script)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class CrashLog:
    seed: int
    kills_mid_pass: int = 0
    kills_idle: int = 0
    completed: int = 0
    kills_by_command: dict[str, int] = field(default_factory=dict)
    duplicates_after_kill: list[str] = field(default_factory=list)
    integrity_after_kill: list[str] = field(default_factory=list)
    final_exit_codes: list[int] = field(default_factory=list)
    full_pass_writes: int = -1
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        return self.kills_mid_pass + self.kills_idle


class Rig:
    """Both simulators served on loopback, a settings file and the console script."""

    def __init__(self, tmp_path: Path, seed: int, size: int = COMPANY_SIZE) -> None:
        today = dt.date.today()
        self.hibob = HibobSimulator(
            generate_company(size, seed=seed % 1000, today=today), today=today
        )
        self.hibob.search_limit_per_minute = self.hibob.read_limit_per_minute = 100_000
        self.learning = LearningSimulator(enforce_rate_limits=False)
        self.learning.faults.latency_seconds = WRITE_LATENCY_SECONDS
        self.servers = [serve(self.hibob.handle), serve(self.learning.handle)]
        self.db = tmp_path / "reconciler.db"
        self.log = (tmp_path / "processes.log").open("ab")
        self.former_mails: dict[str, set[str]] = {}
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
max_deactivations = 10000
max_deactivation_ratio = 1.0

[store]
path = "{self.db}"
""",
            encoding="utf-8",
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "RECONCILER_CONFIG": str(settings),
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_WEBHOOKS__UPSERT_SECRET": "crash-upsert-secret",
            "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": "crash-deactivation-secret",
        }
        self.cwd = tmp_path
        self.script = console_script()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.log.close()

    def start(self, command: str, *args: str) -> subprocess.Popen:
        env = dict(self.env, RECONCILER_WEBHOOKS__LISTEN=f"127.0.0.1:{free_port()}")
        return subprocess.Popen(
            [self.script, command, *args], env=env, cwd=self.cwd, stdout=self.log, stderr=self.log
        )

    def last_pass(self) -> tuple[int, str | None]:
        """(id, finished_at) of the newest non-dry-run pass; (0, None) before the first."""
        try:
            with sqlite3.connect(self.db, timeout=10) as conn:
                row = conn.execute(
                    "SELECT id, finished_at FROM passes WHERE is_dry_run = 0 "
                    "ORDER BY id DESC LIMIT 1"
                ).fetchone()
        except sqlite3.OperationalError:
            return 0, None
        return (row[0], row[1]) if row else (0, None)

    def crash_once(self, command: str, delay_seconds: float, log: CrashLog) -> bool:
        """Start `command`, SIGKILL it `delay_seconds` into its pass; True when killed."""
        before, _ = self.last_pass()
        process = self.start(command)
        deadline = time.monotonic() + 60
        while process.poll() is None and self.last_pass()[0] <= before:
            assert time.monotonic() < deadline, "the pass never started"
            time.sleep(0.005)
        time.sleep(delay_seconds)
        if process.poll() is not None:
            log.completed += 1
            return False
        is_mid_pass = self.last_pass()[1] is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        if is_mid_pass:
            log.kills_mid_pass += 1
        else:
            log.kills_idle += 1
        log.kills_by_command[command] = log.kills_by_command.get(command, 0) + 1
        return True

    def check_after_kill(self, log: CrashLog) -> None:
        if self.db.exists() and (verdict := integrity(self.db)) != "ok":
            log.integrity_after_kill.append(verdict)
        log.duplicates_after_kill += find_duplicates(self.hibob, self.learning, self.former_mails)

    def learning_writes(self) -> int:
        return sum(
            1
            for method, path, _ in list(self.learning.requests)
            if method != "GET" and "oauth2" not in path
        )


def run_crash_loop(tmp_path: Path, seed: int) -> CrashLog:
    rng = random.Random(seed)
    log = CrashLog(seed)
    rig = Rig(tmp_path, seed)
    started = time.monotonic()
    try:
        # A large first sync, killed again and again until one process gets through it.
        for round_number in range(MAX_ROUNDS):
            command = ("sync", "run")[round_number % 2]
            if not rig.crash_once(command, rng.uniform(0.05, 2.5), log):
                break
            rig.check_after_kill(log)
            if log.kills_mid_pass >= MIN_KILLS // 2:
                break
        record_figure("crash loop: kills during the first sync", log.kills)
        first_sync_kills = log.kills
        # Churn: HR changes between runs, each run killed somewhere in its pass.
        for round_number in range(MAX_ROUNDS):
            if log.kills_mid_pass >= MIN_KILLS and round_number >= 10:
                break
            apply_churn(
                rig.hibob,
                rng,
                rng.randint(*CHURN_PER_ROUND),
                rig.former_mails,
                tag=f"r{round_number}",
            )
            command = ("run", "sync")[round_number % 2]
            if rig.crash_once(command, rng.uniform(0.0, 0.8), log):
                rig.check_after_kill(log)
        record_figure("crash loop: kills during churn", log.kills - first_sync_kills)
        # The restart that is left alone, then the checks.
        rig.learning.faults.latency_seconds = 0.0
        for _ in range(2):
            done = subprocess.run(
                [rig.script, "sync"],
                env=rig.env,
                cwd=rig.cwd,
                capture_output=True,
                text=True,
                timeout=300,
            )
            log.final_exit_codes.append(done.returncode)
        log.differences = find_differences(rig.hibob, rig.learning, rig.db, rig.former_mails)
        for line in journal_story(rig.db, log.differences[:1]):
            note(f"  crash loop: {line}")
        writes = rig.learning_writes()
        subprocess.run(
            [rig.script, "sync", "--full"],
            env=rig.env,
            cwd=rig.cwd,
            capture_output=True,
            timeout=300,
        )
        log.full_pass_writes = rig.learning_writes() - writes
        if (verdict := integrity(rig.db)) != "ok":
            log.integrity_after_kill.append(verdict)
    finally:
        rig.close()
    log.seconds = time.monotonic() - started
    record_figure("crash loop: kills survived", log.kills)
    record_figure("crash loop: kills mid-pass", log.kills_mid_pass)
    record_figure("crash loop: duplicates found", len(set(log.duplicates_after_kill)))
    record_figure("crash loop: differences from the desired state", len(log.differences))
    note(
        f"crash loop: seed {seed} (FAULTS_SEED={seed} replays it), {log.kills} SIGKILLs "
        f"({log.kills_mid_pass} mid-pass; {log.kills_by_command}), {log.completed} runs "
        f"finished before their kill, {len(log.differences)} differences, "
        f"{log.seconds:.0f} s"
    )
    kinds: dict[str, list[str]] = {}
    for line in log.differences:
        kind = line.split(": ", 1)[1].split(" ")[0] if ": " in line else line
        kinds.setdefault(kind, []).append(line)
    for kind, lines in sorted(kinds.items()):
        note(f"  crash loop: {len(lines)} differences in {kind}, e.g. {lines[0]}")
    return log


def journal_story(db: Path, differences: list[str]) -> list[str]:
    """What the journal holds for the employee of a difference and the accounts it names
    (its manager, say): the passes and operations that touched them, to read a failure."""
    if not differences:
        return []
    hibob_id = differences[0].split(":", 1)[0]
    with sqlite3.connect(db, timeout=10) as conn:
        named = {
            str(row[0])
            for row in conn.execute("SELECT hibob_id, learning_user_id FROM employees")
            if row[1] and row[1] in differences[0]
        }
        rows = conn.execute(
            "SELECT j.pass_id, p.kind, j.hibob_id, j.action, j.fields, j.outcome, j.error"
            " FROM journal AS j LEFT JOIN passes AS p ON p.id = j.pass_id"
            f" WHERE j.hibob_id IN ({','.join('?' * (1 + len(named)))}) ORDER BY j.id",
            (hibob_id, *sorted(named)),
        ).fetchall()
        states = conn.execute(
            f"SELECT hibob_id, state FROM employees WHERE hibob_id IN"
            f" ({','.join('?' * (1 + len(named)))})",
            (hibob_id, *sorted(named)),
        ).fetchall()
    return [f"journal {' '.join(str(v) for v in row)}" for row in rows] + [
        f"state {h} {state}" for h, state in states
    ]


@pytest.fixture(scope="module")
def crash_log(tmp_path_factory: pytest.TempPathFactory) -> CrashLog:
    return run_crash_loop(tmp_path_factory.mktemp("crash"), suite_seed())


def test_crash_loop_kills_run_and_sync_50_times_mid_pass_and_a_restart_then_succeeds(
    crash_log: CrashLog,
) -> None:
    assert crash_log.kills_mid_pass >= MIN_KILLS, crash_log
    assert set(crash_log.kills_by_command) == {"run", "sync"}
    assert crash_log.final_exit_codes == [0, 0]


def test_no_user_is_ever_created_twice_across_the_kills(crash_log: CrashLog) -> None:
    assert sorted(set(crash_log.duplicates_after_kill)) == []
    assert [d for d in crash_log.differences if " users [" in d] == []


def test_no_change_is_lost_across_the_kills(crash_log: CrashLog) -> None:
    lost = [
        d
        for d in crash_log.differences
        if not any(word in d for word in LINK_WORDS) and " users [" not in d
    ]
    assert lost == []


def test_no_link_is_missing_after_the_kills(crash_log: CrashLog) -> None:
    assert [d for d in crash_log.differences if any(w in d for w in LINK_WORDS)] == []


def test_the_database_passes_integrity_check_after_every_kill(crash_log: CrashLog) -> None:
    assert crash_log.integrity_after_kill == []


def test_a_full_pass_after_the_crash_loop_writes_nothing(crash_log: CrashLog) -> None:
    assert crash_log.full_pass_writes == 0
