"""Admin requests: `resync`, `sync`, `release`, `quarantine --clear` and `explain --apply`,
carried out by a running service (request rows) or locally, with their CLI output."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.commands.admin import request_action, request_resync
from reconciler.commands.cli import main
from reconciler.commands.wiring import build_pass_context
from reconciler.service.admin_requests import compute_held_token
from reconciler.service.lifecycle import Service
from reconciler.store.database import Store
from tests.support import NOW, TODAY, World

FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World(
        tmp_path,
        size=40,
        RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0",
        RECONCILER_SYNC__MAX_DEACTIVATIONS="0",
    )
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    for key, value in world.environ.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "settings.toml").write_text("")  # not the repository's example
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path / "settings.toml"))
    yield world
    world.store.close()  # and its instance lock, when a test took it


def builder(world: World):
    """What `main(build=...)` gets: services over the world's simulators, no sockets."""

    def build(settings, store: Store | None = None):
        return build_pass_context(
            settings,
            hibob_transport=httpx.MockTransport(world.hibob.handle),
            learning_transport=httpx.MockTransport(world.learning.handle),
            store=store,
            sleep=world.time.sleep,
        )

    return build


def run_cli(world: World, capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv), build=builder(world))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def terminate(world: World, count: int, start: int = 0) -> list[str]:
    leavers = world.active_employees()[start : start + count]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=TODAY)
    return leavers


def is_deleted(world: World, hibob_id: str) -> bool:
    return world.user_of(hibob_id)["status"] == "deleted"


def service_holding_the_database(world: World, service: Service) -> Service:
    world.store.acquire_instance_lock()
    return service


@pytest.fixture
def service(world: World) -> Service:
    return Service(world.services, clock=lambda: world.now)


def served_by(service: Service):
    """A waiter's sleep that lets the (not started) service poll and serve in between."""

    def sleep(seconds: float) -> None:
        service.requests.poll()
        service.requests.serve()
        service.requests.serve_quick()  # one employee's requests have their own worker

    return sleep


# -- release ------------------------------------------------------------------------------------
def test_release_shows_the_held_list_with_a_token_and_the_token_releases_exactly_it(
    world, capsys
) -> None:
    leavers = terminate(world, 3)
    assert run_cli(world, capsys, "sync")[0] == 3

    code, out = run_cli(world, capsys, "release")

    assert code == 0 and "3 held deactivation(s)" in out
    assert all(h in out for h in leavers)
    token = compute_held_token(world.store.list_held())
    assert f"reconciler release --token {token}" in out
    code, out = run_cli(world, capsys, "release", "--token", token)
    assert code == 0, out
    assert "released 3 of 3 held deactivations" in out
    assert all(is_deleted(world, h) for h in leavers)
    assert world.store.list_held() == []


def test_release_by_token_is_refused_when_the_held_list_changed_and_shows_the_new_list(
    world, capsys
) -> None:
    first = terminate(world, 2)
    run_cli(world, capsys, "sync")
    shown = compute_held_token(world.store.list_held())
    later = terminate(world, 1, start=5)
    assert run_cli(world, capsys, "sync")[0] == 3

    code, out = run_cli(world, capsys, "release", "--token", shown)

    assert code == 2
    assert "the held list changed since it was shown" in out
    assert "3 held deactivation(s)" in out and later[0] in out
    assert f"--token {compute_held_token(world.store.list_held())}" in out
    assert not any(is_deleted(world, h) for h in first + later)


def test_release_by_ids_deactivates_those_and_keeps_the_others_held(world, capsys) -> None:
    leavers = terminate(world, 3)
    run_cli(world, capsys, "sync")

    code, out = run_cli(world, capsys, "release", leavers[0], leavers[1])

    assert code == 3, out  # the third is still held
    assert is_deleted(world, leavers[0]) and is_deleted(world, leavers[1])
    assert not is_deleted(world, leavers[2])
    assert [r.hibob_id for r in world.store.list_held()] == [leavers[2]]


def test_release_of_an_employee_who_is_not_held_is_refused(world, capsys) -> None:
    leavers = terminate(world, 1)
    run_cli(world, capsys, "sync")
    other = world.active_employees()[10]

    code, out = run_cli(world, capsys, "release", other)

    assert code == 2 and f"not held any more: {other}" in out
    assert not is_deleted(world, leavers[0])


def test_release_through_a_running_service_rechecks_the_token_when_it_serves(
    world, service
) -> None:
    terminate(world, 2)
    world.sync()
    token = compute_held_token(world.store.list_held())
    later = terminate(world, 1, start=6)
    service_holding_the_database(world, service)
    world.sync()  # a pass in the service grows the list after the admin saw it

    out = io.StringIO()
    code = request_action(
        world.settings, "release", {"token": token}, out, sleep=served_by(service)
    )

    assert code == 2, out.getvalue()
    assert "refused: the held list changed" in out.getvalue() and later[0] in out.getvalue()
    assert len(world.store.list_held()) == 3


def test_resync_release_held_shows_the_list_first_then_releases_it(world, capsys) -> None:
    leavers = terminate(world, 2)
    run_cli(world, capsys, "sync")

    code, out = run_cli(world, capsys, "resync", "--release-held")

    assert code == 0, out
    assert out.index("2 held deactivation(s)") < out.index("full pass")
    assert all(is_deleted(world, h) for h in leavers)


# -- quarantine -----------------------------------------------------------------------------------
def quarantine(world: World, hibob_id: str) -> None:
    world.store.record_failure(
        hibob_id,
        "360Learning rejected mail (mailInvalid)",
        quarantine_after=1,
        quarantined_until=FAR_FUTURE,
        at=NOW,
    )


def test_quarantine_lists_and_clears_one_employee_by_email(world, capsys) -> None:
    first, second = world.active_employees()[3:5]
    quarantine(world, first)
    quarantine(world, second)

    code, out = run_cli(world, capsys, "quarantine")
    assert code == 0 and "2 quarantined employee(s)" in out
    assert "until 2999-01-01T00:00:00+00:00: 360Learning rejected mail (mailInvalid)" in out

    email = world.store.get_entry(first).email
    code, out = run_cli(world, capsys, "quarantine", "--clear", email.upper())
    assert code == 0 and f"quarantine lifted for 1: {first}" in out
    assert [r.hibob_id for r in world.store.list_quarantined(NOW)] == [second]
    assert run_cli(world, capsys, "quarantine", "--all")[0] == 0
    assert world.store.list_quarantined(NOW) == []


def test_quarantine_clear_of_an_unknown_employee_is_one_line_and_exit_1(world, capsys) -> None:
    code, out = run_cli(world, capsys, "quarantine", "--clear", "nobody@nowhere.test")
    assert code == 1 and "employee nobody@nowhere.test is not in the database" in out


def test_resync_retry_quarantined_lifts_quarantine_and_retries_them(world, capsys) -> None:
    hibob_id = world.active_employees()[4]
    world.hibob.update_employee(hibob_id, **{"work.title": "Retried"})
    quarantine(world, hibob_id)

    code, out = run_cli(world, capsys, "resync", "--retry-quarantined")

    assert code == 0, out
    assert f"quarantine lifted for 1: {hibob_id}" in out
    assert world.user_of(hibob_id)["job"] == "Retried"


# -- through a running service ---------------------------------------------------------------------
def test_sync_of_one_employee_is_carried_out_by_a_running_service(world, capsys) -> None:
    hibob_id = world.active_employees()[2]
    running = Service(world.services)
    running.start()
    try:
        deadline = time.monotonic() + 5
        while not (last := world.store.list_passes(1)[0]).id > 1 or not last.finished_at:
            # the start-up pass must be over before Hibob changes
            assert time.monotonic() < deadline, "the start-up pass never ran"
            time.sleep(0.01)
        world.hibob.update_employee(hibob_id, **{"work.title": "Provisioned On Demand"})
        code, out = run_cli(world, capsys, "sync", "--employee", hibob_id)
    finally:
        running.stop()

    assert code == 0, out
    assert "targeted requested (request 1)" in out
    assert f"{hibob_id}" in out and "update [job]" in out
    user_id = Store(world.db).get_entry(hibob_id).learning_user_id
    assert world.learning.user(user_id)["job"] == "Provisioned On Demand"


def test_quarantine_clear_through_a_service_is_carried_out_by_it(world, service) -> None:
    hibob_id = world.active_employees()[1]
    quarantine(world, hibob_id)
    service_holding_the_database(world, service)

    out = io.StringIO()
    code = request_action(
        world.settings, "quarantine-clear", {"ids": [hibob_id]}, out, sleep=served_by(service)
    )

    assert code == 0 and "requested (request 1)" in out.getvalue()
    assert world.store.list_quarantined(NOW) == []
    assert world.store.get_request(1).outcome == "ok"


# -- resync (moved from test_service) ----------------------------------------------------
def test_resync_requests_are_served_by_one_full_pass_and_the_waiter_gets_its_outcome(
    world, service
) -> None:
    service_holding_the_database(world, service)
    user_id = world.store.get_entry(world.active_employees()[8]).learning_user_id
    world.learning.edit_user(user_id, job="Edited by hand")
    earlier = world.store.save_request("resync", {}, NOW, expires_at=FAR_FUTURE)

    out = io.StringIO()
    code = request_resync(world.settings, wait=True, out=out, sleep=served_by(service))

    assert code == 0, out.getvalue()
    assert world.learning.user(user_id)["job"] != "Edited by hand"
    full = [p for p in world.store.list_passes(100) if p.kind == "full"]
    assert len(full) == 1
    mine = world.store.get_request(earlier + 1)
    assert mine.outcome == "ok"
    assert mine.pass_id == world.store.get_request(earlier).pass_id
    assert f"full pass {mine.pass_id}: ok" in out.getvalue()


def test_resync_without_waiting_only_leaves_a_request(world, service) -> None:
    service_holding_the_database(world, service)
    out = io.StringIO()

    assert request_resync(world.settings, wait=False, out=out) == 0

    assert "resync requested (request 1)" in out.getvalue()
    assert world.store.get_request(1).started_at is None


def test_resync_waiter_is_told_when_the_service_stopped_before_the_resync(world, service) -> None:
    service_holding_the_database(world, service)

    def sleep(seconds: float) -> None:
        service.requests.poll()
        service.stop(timeout_seconds=1)

    out = io.StringIO()
    assert request_resync(world.settings, wait=True, out=out, sleep=sleep) == 1
    assert "stopped before the resync ran" in out.getvalue()


def test_resync_with_no_running_service_runs_the_full_pass_itself(world: World) -> None:
    user_id = world.store.get_entry(world.active_employees()[9]).learning_user_id
    world.learning.edit_user(user_id, job="Edited by hand")

    out = io.StringIO()
    assert request_resync(world.settings, wait=True, out=out, build=builder(world)) == 0

    assert world.learning.user(user_id)["job"] != "Edited by hand"
    assert "full pass" in out.getvalue() and ": ok" in out.getvalue()
    assert not world.store.is_instance_running()


def test_old_resync_requests_survive_the_migration_to_admin_requests(tmp_path) -> None:
    import sqlite3

    from reconciler.store.database import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO resync_requests (requested_at, finished_at, pass_id, outcome)"
        " VALUES ('2026-11-28T12:00:00+00:00', '2026-11-28T12:01:00+00:00', 4, 'ok')"
    )
    conn.commit()
    conn.close()
    request = Store(path).get_request(1)
    assert (request.kind, request.pass_id, request.outcome) == ("resync", 4, "ok")


def test_a_request_the_service_cannot_carry_out_is_answered_as_failed(world, service) -> None:
    service_holding_the_database(world, service)
    world.store.save_request("defragment", {}, NOW, expires_at=FAR_FUTURE)  # a newer CLI

    service.requests.poll()
    service.requests.serve()

    request = world.store.get_request(1)
    assert request.outcome == "failed" and "defragment" in request.detail


# -- issue 19 case 1: a request is bound to the command waiting for it --------------------------
def test_case_1_a_request_whose_command_gave_up_is_never_carried_out(world, service) -> None:
    service_holding_the_database(world, service)  # a cron `sync` holds the lock
    out = io.StringIO()
    code = request_action(
        world.settings,
        "sync",
        {"pass_kind": "incremental", "allow_deactivations": True},
        out,
        sleep=lambda seconds: None,
        timeout_seconds=1.0,
    )
    assert code == 1, out.getvalue()
    leavers = terminate(world, 30)
    assert world.sync().outcome == "held"  # a bad HR import, held by the breaker

    service.requests.poll()  # the next `reconciler run` finds the old row
    service.requests.serve()

    assert not any(is_deleted(world, h) for h in leavers)
    assert len(world.store.list_held()) == 30
    assert world.store.get_request(1).outcome == "expired"


def test_case_1_a_request_past_its_deadline_is_expired_not_carried_out(world, service) -> None:
    service_holding_the_database(world, service)
    leavers = terminate(world, 3)
    world.sync()
    token = compute_held_token(world.store.list_held())
    world.store.save_request("release", {"token": token}, NOW, expires_at=NOW)
    world.now = NOW + dt.timedelta(seconds=1)
    service.requests.poll()
    service.requests.serve()
    assert world.store.get_request(1).outcome == "expired"
    assert not any(is_deleted(world, h) for h in leavers)


def test_case_1_a_hand_written_request_releases_nothing(world, service) -> None:
    service_holding_the_database(world, service)
    leavers = terminate(world, 3)
    world.sync()
    with world.store.transaction() as conn:  # no deadline: no command wrote it
        conn.execute(
            "INSERT INTO admin_requests (kind, args, requested_at) VALUES"
            " ('sync', '{\"allow_deactivations\": true}', '2026-11-28T12:00:00+00:00')"
        )
    world.store.save_request(  # a deadline, but "allow everything" was never shown to anyone
        "sync",
        {"pass_kind": "incremental", "allow_deactivations": True},
        NOW,
        expires_at=FAR_FUTURE,
    )
    service.requests.poll()
    service.requests.serve()
    assert world.store.get_request(1).outcome == "expired"
    assert world.store.get_request(2).outcome == "held"
    assert not any(is_deleted(world, h) for h in leavers)


def test_case_1_sync_allow_deactivations_through_the_service_releases_the_list_shown(
    world, service
) -> None:
    shown = terminate(world, 2)
    world.sync()
    service_holding_the_database(world, service)
    out = io.StringIO()

    def sleep(seconds: float) -> None:
        if not later:
            later.extend(terminate(world, 1, start=6))  # after the admin saw the list
        service.requests.poll()
        service.requests.serve()

    later: list[str] = []
    code = request_action(
        world.settings,
        "sync",
        {"pass_kind": "incremental", "allow_deactivations": True},
        out,
        sleep=sleep,
    )
    assert all(h in out.getvalue() for h in shown)
    assert all(is_deleted(world, h) for h in shown)
    assert not is_deleted(world, later[0]) and code == 3, out.getvalue()


def test_case_1_a_row_with_bad_json_does_not_strand_the_request_beside_it(world, service) -> None:
    service_holding_the_database(world, service)
    with world.store.transaction() as conn:
        conn.execute(
            "INSERT INTO admin_requests (kind, args, requested_at, expires_at) VALUES"
            " ('resync', '{not json', '2026-11-28T12:00:00+00:00', '2999-01-01T00:00:00+00:00')"
        )
    world.store.save_request("resync", {}, NOW, expires_at=FAR_FUTURE)
    service.requests.poll()
    service.requests.serve()
    bad, good = world.store.get_request(1), world.store.get_request(2)
    assert bad.outcome == "failed" and "arguments" in bad.detail
    assert good.outcome == "ok" and good.pass_id


def test_case_1_an_unknown_pass_kind_is_refused_not_run(world, service) -> None:
    service_holding_the_database(world, service)
    passes = len(world.store.list_passes(100))
    for kind in ("targeted", "hourly"):
        world.store.save_request("sync", {"pass_kind": kind}, NOW, expires_at=FAR_FUTURE)
    service.requests.poll()
    service.requests.serve()
    assert [world.store.get_request(i).outcome for i in (1, 2)] == ["failed", "failed"]
    assert len(world.store.list_passes(100)) == passes
