"""Issue 19 scenarios with the real console script against both simulators served on loopback:
a stale admin request left by a command that gave up, and a wave of future terminations that
would schedule deactivations past the breaker."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from faults.conftest import note, record_figure
from faults.test_crash_loop import Rig
from reconciler.store.database import Store

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _rig(tmp_path: Path, **sync: object) -> Rig:
    rig = Rig(tmp_path, seed=19, size=120)
    settings = Path(rig.env["RECONCILER_CONFIG"])
    text = settings.read_text(encoding="utf-8")
    text = text.replace("max_deactivations = 10000", f"max_deactivations = {sync.pop('max', 5)}")
    text = text.replace("max_deactivation_ratio = 1.0", "max_deactivation_ratio = 0.5")
    if sync.pop("last_day", False):
        text = text.replace("[sync]", "[mapping]\ndeactivate_on_last_day = true\n\n[sync]")
    settings.write_text(text, encoding="utf-8")
    return rig


def _run(rig: Rig, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [rig.script, *argv],
        env=rig.env,
        cwd=rig.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _active(rig: Rig) -> list[str]:
    return sorted(
        h
        for h, r in rig.hibob.records.items()
        if r.get("internal.status") == "Active" and h != rig.hibob.ceo_id
    )


def _deleted(rig: Rig) -> int:
    return sum(1 for u in rig.learning.users_by_mail().values() if u["status"] == "deleted")


def test_a_stale_sync_allow_deactivations_request_never_releases_a_later_hold(tmp_path) -> None:
    rig = _rig(tmp_path)
    try:
        assert _run(rig, "sync").returncode == 0
        cron = Store(rig.db)
        cron.acquire_instance_lock()  # a cron `sync` holds the lock
        admin = rig.start("sync", "--allow-deactivations")
        deadline = time.monotonic() + 30
        while not _requests(rig.db) and time.monotonic() < deadline:
            time.sleep(0.05)
        cron.release_instance_lock()  # the cron sync ends: the admin's command gives up
        cron.close()
        assert admin.wait(timeout=60) == 1
        deleted = _deleted(rig)
        leavers = _active(rig)[:30]  # a bad HR import
        for hibob_id in leavers:
            rig.hibob.terminate(hibob_id, on=rig.hibob.today)
        assert _run(rig, "sync").returncode == 3  # held by the breaker
        service = rig.start("run")  # the next `reconciler run` finds the old row
        time.sleep(4)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
        assert _deleted(rig) == deleted
        [(outcome,)] = _requests(rig.db)
        assert outcome == "expired"
        record_figure("admin scenarios: stale requests carried out", 0)
        note("admin scenarios: a stale `sync --allow-deactivations` expired; 30 stayed held")
    finally:
        rig.close()


def test_future_terminations_past_the_breaker_are_held_then_released_by_token(tmp_path) -> None:
    rig = _rig(tmp_path, last_day=True)
    try:
        assert _run(rig, "sync").returncode == 0
        already = _scheduled(rig)  # leavers of the generated company, scheduled before
        leavers = [
            h for h in _active(rig) if not rig.hibob.records[h].get("internal.terminationDate")
        ][:40]
        for hibob_id in leavers:
            rig.hibob.terminate(hibob_id, on=rig.hibob.today + dt.timedelta(days=14))
        held = _run(rig, "sync")
        assert held.returncode == 3, held.stdout + held.stderr
        assert _scheduled(rig) == already
        listing = _run(rig, "release")
        token = next(
            line.split("token", 1)[1].split()[0].strip(":")
            for line in listing.stdout.splitlines()
            if "token" in line
        )
        shown = [line for line in listing.stdout.splitlines() if "scheduled for" in line]
        assert len(shown) >= 35  # the leavers with an account (a few have no valid email)
        released = _run(rig, "release", "--token", token)
        assert released.returncode == 0, released.stdout + released.stderr
        assert _scheduled(rig) == already + len(shown)
        record_figure("admin scenarios: scheduled deactivations held", 40)
        note("admin scenarios: 40 future terminations held (max 5), then released by token")
    finally:
        rig.close()


def _scheduled(rig: Rig) -> int:
    return sum(1 for u in rig.learning.users_by_mail().values() if u.get("toBeDeactivatedAt"))


def _requests(db: Path) -> list[tuple[str | None]]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT outcome FROM admin_requests ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []


def test_a_second_run_through_a_symlink_or_without_the_pid_file_never_starts(tmp_path) -> None:
    rig = _rig(tmp_path)
    try:
        assert _run(rig, "sync").returncode == 0
        first = rig.start("run")
        deadline = time.monotonic() + 30
        while not Store(rig.db).is_instance_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        link = tmp_path / "elsewhere.db"
        link.symlink_to(rig.db)
        Path(str(rig.db) + ".lock").unlink(missing_ok=True)  # someone tidied up
        started = 1
        settings = Path(rig.env["RECONCILER_CONFIG"])
        for path in (link, rig.db):
            env = dict(rig.env, RECONCILER_STORE__PATH=str(path))
            second = subprocess.run(
                [rig.script, "run"],
                env=env,
                cwd=rig.cwd,
                capture_output=True,
                text=True,
                timeout=60,
            )
            started += second.returncode == 0
            assert second.returncode != 0 and "already running" in second.stderr, second.stderr
        assert settings.exists()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        record_figure("two instances: reconciler run processes that started", started)
        note(f"two instances: {started} of 3 `reconciler run` started (symlink, no pid file)")
    finally:
        rig.close()


def test_an_admin_sync_of_one_employee_during_a_3000_update_pass(tmp_path) -> None:
    """Issue 15 item 10 with real processes: `sync --employee` while `reconciler run` works
    through 3,000 updates lands beside the pass, not after it."""
    rig = Rig(tmp_path, seed=10, size=3000)
    rig.learning.faults.latency_seconds = 0.0
    try:
        assert _run(rig, "sync", timeout=240).returncode == 0
        active = _active(rig)
        for hibob_id in active:
            rig.hibob.update_employee(hibob_id, **{"work.title": "Reorganised"})
        rig.learning.faults.latency_seconds = 0.01  # 3,000 writes: about 30 s or more
        last = _last_pass_id(rig.db)
        service = rig.start("run")
        try:
            deadline = time.monotonic() + 60
            while _updates_done(rig.db, last) < 50:  # the long pass is writing
                assert time.monotonic() < deadline, "the long pass never started writing"
                time.sleep(0.1)
            target = active[-1]
            rig.hibob.update_employee(target, **{"work.title": "Admin Title"})
            started = time.monotonic()
            done = _run(rig, "sync", "--employee", target)
            took = time.monotonic() - started
            assert done.returncode == 0, done.stdout + done.stderr
            assert _job_of(rig, target) == "Admin Title"
            assert _pass_running(rig.db, last), "the long pass ended before the admin command"
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=120)
        record_figure("admin sync --employee during a 3,000-update pass, seconds", round(took, 2))
        note(f"admin: `sync --employee` took {took:.2f} s during a 3,000-update pass")
    finally:
        rig.close()


def _last_pass_id(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM passes").fetchone()[0])


def _updates_done(db: Path, after: int) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM journal WHERE pass_id > ? AND action = 'update'", (after,)
            ).fetchone()[0]
        )


def _pass_running(db: Path, after: int) -> bool:
    with sqlite3.connect(db, timeout=10) as conn:
        return bool(
            conn.execute(
                "SELECT COUNT(*) FROM passes WHERE id > ? AND kind = 'incremental'"
                " AND finished_at IS NULL",
                (after,),
            ).fetchone()[0]
        )


def _job_of(rig: Rig, hibob_id: str) -> str | None:
    email = rig.hibob.records[hibob_id].get("root.email")
    user = rig.learning.users_by_mail().get(str(email).lower()) or {}
    return user.get("job")
