"""Progress of a long pass: rate and ETA, what the service publishes for `status` and metrics,
each action's own time in the journal, and a clean Ctrl-C during `sync`."""

from __future__ import annotations

import datetime as dt
import gc
import io
import logging
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from reconciler.commands.cli import main
from reconciler.commands.status import collect_status
from reconciler.commands.terminal import TerminalProgress, print_status
from reconciler.commands.wiring import build_pass_context
from reconciler.passes.apply import PassHooks
from reconciler.passes.progress import PassProgress, ProgressTracker, describe_progress
from reconciler.service.lifecycle import Service
from reconciler.store.database import Store
from tests.support import NOW, FakeClock, World


def test_rate_and_eta_follow_the_recent_pace_of_the_apply() -> None:
    clock = FakeClock(0.0)
    tracker = ProgressTracker(monotonic=clock, window_seconds=30)
    tracker("read", 0, None)
    tracker("read", 3000, 3000)
    for second in range(0, 61):
        clock.now = 100 + second
        # 4 operations a second for the first 30 s, then 8 a second
        done = 4 * second if second <= 30 else 120 + 8 * (second - 30)
        tracker("apply", done, 3000)

    snapshot = tracker.snapshot()
    assert (snapshot.phase, snapshot.done, snapshot.total) == ("apply", 360, 3000)
    assert snapshot.rate_per_second == pytest.approx(8.0)
    assert snapshot.eta_seconds == pytest.approx((3000 - 360) / 8)


def test_progress_reads_as_one_line_with_count_rate_and_time_left() -> None:
    line = describe_progress(
        {
            "phase": "apply",
            "done": 1234,
            "total": 3000,
            "rate_per_second": 8.1,
            "eta_seconds": 218.0,
        }
    )
    assert line == "apply 1,234/3,000 (41%) at 8.1/s, about 3 min 38 s left"
    assert (
        describe_progress(
            {"phase": "read", "done": 0, "total": None, "rate_per_second": 0.0, "eta_seconds": None}
        )
        == "read 0"
    )


def test_a_first_pass_reports_each_phase_and_ends_with_all_operations_done(world: World) -> None:
    events: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()

    def record(phase: str, done: int, total: int | None) -> None:
        with lock:
            events.append((phase, done, total))

    result = world.sync(hooks=PassHooks(progress=record))

    phases = list(dict.fromkeys(phase for phase, _, _ in events))
    assert phases == ["read", "plan", "apply"]
    applies = [e for e in events if e[0] == "apply"]
    assert max(done for _, done, _ in applies) == applies[0][2]
    assert applies[0][2] >= result.counts["create"]


def test_apply_progress_counts_the_writes_the_pass_sends_so_the_eta_holds(world: World) -> None:
    totals: list[int | None] = []
    world.sync(
        hooks=PassHooks(
            progress=lambda phase, done, total: totals.append(total) if phase == "apply" else None
        )
    )
    assert totals[0] == len(world.learning_writes())

    changed = world.active_employees()[:5]
    for hibob_id in changed:
        world.hibob.update_employee(hibob_id, **{"work.title": "Counted"})
    before, totals[:] = len(world.learning_writes()), []
    world.sync(
        hooks=PassHooks(
            progress=lambda phase, done, total: totals.append(total) if phase == "apply" else None
        )
    )
    assert totals[0] == len(world.learning_writes()) - before == len(changed)


def test_each_journal_row_carries_the_time_its_action_ran(world: World) -> None:
    ticks = iter(NOW + dt.timedelta(seconds=s) for s in range(1, 10**6))
    tick_lock = threading.Lock()

    def clock() -> dt.datetime:
        with tick_lock:
            return next(ticks)

    world.sync(hooks=PassHooks(clock=clock))

    times = [row.at for row in world.store.list_journal() if row.outcome == "ok"]
    assert len(set(times)) == len(times) > 1
    assert min(times) > NOW.isoformat()


class SlowWrites:
    def __init__(self, world: World, seconds: float) -> None:
        self.world, self.seconds = world, seconds

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            time.sleep(self.seconds)
        return self.world.learning.handle(request)


def test_the_service_publishes_a_long_pass_progress_for_status_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.service.runner.PROGRESS_SAVE_SECONDS", 0.1)
    world = World(tmp_path, size=40, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    world.route_learning_through(SlowWrites(world, 0.05))
    service = Service(world.services)
    service.start()
    try:
        deadline, running = time.monotonic() + 10, None
        while not (running and running["phase"] == "apply" and running["done"] > 0):
            assert time.monotonic() < deadline, "no progress was published"
            time.sleep(0.05)
            running = collect_status(Store(world.db), world.settings, NOW)["pass_in_progress"]
        out = io.StringIO()
        print_status(collect_status(Store(world.db), world.settings, NOW), out)
        registry = service.metrics.registry
        assert registry.get_sample_value("reconciler_pass_progress_total") == running["total"]
    finally:
        service.stop(timeout_seconds=9)
    assert running["pass"] == "incremental pass"
    assert "in progress: incremental pass, apply " in out.getvalue()
    assert collect_status(Store(world.db), world.settings, NOW)["pass_in_progress"] is None


def test_pass_progress_logs_a_line_every_period_with_structured_fields(caplog) -> None:
    caplog.set_level(logging.INFO, logger="reconciler")
    clock, saved = FakeClock(0.0), []
    progress = PassProgress(
        "full pass", save_state=saved.append, log_every_seconds=10, monotonic=clock
    )
    for second in range(25):
        clock.now = second
        progress.tracker("apply", second * 10, 1000)

    lines = [r for r in caplog.records if r.name == "reconciler.passes.progress"]
    assert len(lines) == 2
    assert lines[-1].progress["done"] == 200 and lines[-1].progress["total"] == 1000
    assert "full pass: apply 200/1,000 (20%) at 10.0/s" in lines[-1].getMessage()
    progress.finish()
    assert saved[-1] == {"progress": None} and len(saved) < 25


def test_terminal_progress_draws_one_bar_per_phase() -> None:
    tracker = ProgressTracker()
    bar = TerminalProgress()
    tracker.listeners.append(bar.update)
    with bar:
        tracker("read", 0, None)
        tracker("read", 10, 10)
        tracker("apply", 5, 10)
    assert [task.description for task in bar._progress.tasks] == ["read Hibob", "writes"]


def test_ctrl_c_during_sync_stops_cleanly_saying_what_was_done_and_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    world = World(tmp_path, size=40)
    for key, value in world.environ.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "settings.toml").write_text("")
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path / "settings.toml"))
    writes, lock = [], threading.Lock()

    def interrupt_after_ten_writes(request: httpx.Request) -> httpx.Response:
        if request.method != "GET" and "oauth2" not in request.url.path:
            with lock:
                writes.append(request)
                is_tenth = len(writes) == 10
            if is_tenth:
                # As Ctrl-C does: Linux hands a process's signal to its main thread first.
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return world.learning.handle(request)

    def build(settings, **kwargs):
        return build_pass_context(
            settings,
            hibob_transport=httpx.MockTransport(world.hibob.handle),
            learning_transport=httpx.MockTransport(interrupt_after_ten_writes),
            sleep=lambda seconds: None,
            **kwargs,
        )

    # Earlier tests' unclosed sockets are finalised by the garbage collector, and an interrupt
    # that lands inside a finaliser is lost: collect them first.
    gc.collect()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh CLI
    try:
        assert main(["sync"], build=build) == 130
    finally:
        signal.signal(signal.SIGINT, previous)

    # The one line the CLI prints; a log line (JSON) may follow it on a loaded machine.
    err = next(
        line
        for line in reversed(capsys.readouterr().err.strip().splitlines())
        if line.startswith("reconciler: interrupted")
    )
    done, total, left = map(
        int,
        re.fullmatch(
            r"reconciler: interrupted: about (\d+) of (\d+) writes done, (\d+) left; "
            r"run the same command again to finish them",
            err,
        ).groups(),
    )
    assert left == total - done > 0
    store = Store(world.db)
    assert store.list_passes(1)[0].outcome == "interrupted"
    # A write the interrupt caught in flight (sent from the main thread) stays pending:
    # unconfirmed until the next pass reads it back, as after a crash; nothing else does.
    assert len([r for r in store.list_journal() if r.outcome == "pending"]) <= 1
    assert main(["sync"], build=build) == 0
    assert world.sync().plan.is_empty
    assert "pending" not in {row.outcome for row in Store(world.db).list_journal()}
