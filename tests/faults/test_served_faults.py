"""Faults through real sockets: `reconciler sync` (the console script) against both simulators
served on loopback, with timeouts, dropped connections and answers lost after the write.

The in-process matrix covers the cases; this checks that the served simulators really produce
them (a held then closed socket, a closed socket after the write) and that the process says
what happened in its exit code and one line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from faults.conftest import record_figure
from faults.oracle import find_differences, find_duplicates, integrity
from faults.test_crash_loop import Rig

pytestmark = pytest.mark.faults


@pytest.fixture
def rig(tmp_path: Path):
    rig = Rig(tmp_path, seed=23, size=60)
    rig.learning.faults.latency_seconds = 0.0
    rig.env["RECONCILER_HIBOB__TIMEOUT_SECONDS"] = "1"
    rig.env["RECONCILER_LEARNING__TIMEOUT_SECONDS"] = "1"
    try:
        yield rig
    finally:
        rig.close()


def _sync(rig: Rig) -> subprocess.CompletedProcess:
    return subprocess.run(
        [rig.script, "sync"], env=rig.env, cwd=rig.cwd, capture_output=True, text=True, timeout=300
    )


def test_served_timeouts_and_answers_lost_after_writes_are_retried_without_duplicates(
    rig: Rig,
) -> None:
    rig.hibob.faults.timeout_hold_seconds = rig.learning.faults.timeout_hold_seconds = 1.5
    rig.hibob.faults.timeout_next(1)
    rig.learning.faults.timeout_next(2, method="POST")
    rig.learning.faults.drop_after_apply_next(5, method="POST", path_prefix="/api/v2/users")
    rig.learning.faults.drop_after_apply_next(3, method="PUT")
    rig.learning.faults.drop_next(3)

    done = _sync(rig)

    injected = rig.hibob.faults.injected + rig.learning.faults.injected
    record_figure("served faults: faults injected", injected)
    assert injected == 14
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert find_duplicates(rig.hibob, rig.learning) == []
    assert find_differences(rig.hibob, rig.learning, rig.db) == []
    assert integrity(rig.db) == "ok"


def test_a_served_hibob_outage_exits_1_with_one_line_and_the_next_run_converges(rig: Rig) -> None:
    # Retry-After: 0 keeps the six real attempts quick.
    rig.hibob.faults.fail_next(10_000, 503, headers={"Retry-After": "0"})

    down = _sync(rig)

    record_figure("served faults: faults injected", rig.hibob.faults.injected)
    assert down.returncode == 1
    assert "Hibob API answered 503" in down.stdout
    assert "Traceback" not in down.stdout + down.stderr
    assert rig.learning_writes() == 0
    rig.hibob.faults.clear()
    assert _sync(rig).returncode == 0
    assert find_differences(rig.hibob, rig.learning, rig.db) == []
