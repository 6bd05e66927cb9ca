"""Issue 15's operational items that are not about HTTP: finish times, pipes, read-only
commands on a wrong database path, owner-only files."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import World


def test_11_a_pass_is_stored_with_its_finish_time_not_its_start(world: World, monkeypatch):
    import reconciler.passes.reconcile as reconcile
    import reconciler.passes.reconcile_results as reconcile_results

    ticks = iter([1000.0] + [1093.0] * 50)  # the pass's own clock: it took 93 s

    class Clock:
        monotonic = staticmethod(lambda: next(ticks))

    monkeypatch.setattr(reconcile, "time", Clock)  # the start
    monkeypatch.setattr(reconcile_results, "time", Clock)  # the finish (`_finish`)
    result = world.sync()
    [row] = [p for p in world.store.list_passes(5) if p.id == result.pass_id]
    started = dt.datetime.fromisoformat(row.started_at)
    finished = dt.datetime.fromisoformat(row.finished_at)
    assert (finished - started).total_seconds() == pytest.approx(93, abs=1)


def _script() -> str:
    script = Path(sys.executable).parent / "reconciler"
    if not script.exists():
        pytest.skip("no console script (install with `make test`)")
    return str(script)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["history", "--json"], ["history"], ["status", "--json"]])
def test_13_a_reader_closing_the_pipe_ends_the_command_quietly(world: World, tmp_path, argv):
    for _ in range(4):
        world.hibob.update_employee(world.active_employees()[1], **{"work.title": f"T{_}"})
        world.sync()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RECONCILER_CONFIG": str(tmp_path / "none.toml"),
        "RECONCILER_STORE__PATH": str(world.db),
    }
    (tmp_path / "none.toml").write_text("")
    reader = subprocess.Popen(
        [_script(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert reader.stdout is not None
    reader.stdout.read(10)  # `| head -c 10`
    reader.stdout.close()
    code = reader.wait(timeout=30)
    stderr = reader.stderr.read().decode() if reader.stderr else ""
    if reader.stderr:
        reader.stderr.close()
    assert "BrokenPipeError" not in stderr and "Exception ignored" not in stderr, stderr
    assert code in (0, 141), (code, stderr)


@pytest.mark.slow
def test_15_a_read_only_command_never_creates_a_database(tmp_path) -> None:
    missing = tmp_path / "typo" / "reconciler.db"
    (tmp_path / "typo").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RECONCILER_CONFIG": str(tmp_path / "none.toml"),
        "RECONCILER_STORE__PATH": str(missing),
    }
    (tmp_path / "none.toml").write_text("")
    for argv in (["status"], ["history"], ["quarantine"], ["release", "--list"]):
        done = subprocess.run([_script(), *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert str(missing) in done.stderr and "store.path" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not missing.exists(), argv


def test_9_the_database_and_its_lock_are_for_their_owner_only(tmp_path) -> None:
    from reconciler.store.database import Store

    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "owner.db")
        store.acquire_instance_lock()
        store.start_pass("incremental", dt.datetime.now(dt.UTC))
        files = [p for p in tmp_path.iterdir() if p.name.startswith("owner.db")]
        assert files
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (
                path.name,
                oct(path.stat().st_mode),
            )
        store.close()
    finally:
        os.umask(old)


def test_12_a_targeted_pass_repairs_drift_of_the_linked_account(world: World) -> None:
    assert world.sync().outcome == "ok"
    edited, deleted = world.active_employees()[3:5]
    world.learning.edit_user(world.user_of(edited)["_id"], job="Edited by hand")
    world.learning.delete_user(world.user_of(deleted)["_id"])
    first = world.sync("targeted", employee=edited)
    assert [(a.kind, a.fields) for a in first.plan.actions] == [("update", ["job"])]
    assert world.user_of(edited)["job"] != "Edited by hand"
    second = world.sync("targeted", employee=deleted)
    assert [a.kind for a in second.plan.actions] == ["reactivate"]
    assert world.user_of(deleted)["status"] == "active"
    assert world.sync("targeted", employee=deleted).plan.actions == ()
