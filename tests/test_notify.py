"""Alerts (reconciler.service.notify) sent by the service to a local HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from reconciler.service.lifecycle import Service
from reconciler.service.webhooks import Hint
from tests.support import World

TOKEN_PATH = "/services/T000/B000/very-secret-token"


class Receiver:
    """A chat webhook stand-in: records each JSON body; answers `status`."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                receiver.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{TOKEN_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def service_for(world: World, url: str, **settings: str) -> Service:
    world.services = world.build(RECONCILER_NOTIFY__WEBHOOK_URL=url, **settings)
    return Service(world.services, clock=lambda: world.now)


def test_a_held_pass_is_announced_once_not_at_every_pass(tmp_path: Path, receiver) -> None:
    world = World(tmp_path, size=30)
    service = service_for(world, receiver.url, RECONCILER_SYNC__MAX_DEACTIVATIONS="0")
    service.run_incremental()
    leaver = next(h for h in world.active_employees() if world.user_of(h))
    world.hibob.terminate(leaver, on=world.hibob.today)

    assert service.run_incremental().outcome == "held"
    assert service.run_incremental().outcome == "held"

    (text,) = receiver.texts()
    assert "held 1 deactivation" in text and leaver in text and "reconciler release" in text


def test_failed_passes_alert_once_at_the_threshold_and_recovery_once(tmp_path, receiver) -> None:
    world = World(tmp_path, size=10)
    service = service_for(world, receiver.url, RECONCILER_NOTIFY__FAILED_PASSES="2")
    world.hibob.faults.fail_next(3, 401, None)

    outcomes = [service.run_incremental().outcome for _ in range(3)]
    after_failures = receiver.texts()
    service.run_incremental()
    service.run_incremental()

    assert outcomes == ["failed"] * 3
    assert len(after_failures) == 1 and "2 passes failed in a row" in after_failures[0]
    assert "401" in after_failures[0]
    assert len(receiver.texts()) == 2 and "recovered" in receiver.texts()[1]


def test_a_newly_quarantined_employee_is_announced_once(tmp_path, receiver) -> None:
    world = World(tmp_path, size=10)
    service = service_for(world, receiver.url)
    victim = world.active_employees()[0]
    victim_mail = world.hibob.records[victim]["root.email"].lower()

    def reject_victim(request: httpx.Request) -> httpx.Response:
        if (
            request.method == "POST"
            and request.url.path == "/api/v2/users"
            and victim_mail.encode() in request.content
        ):
            return httpx.Response(
                400, json={"error": {"code": "mailInvalid", "message": "rejected"}}
            )
        return world.learning.handle(request)

    world.route_learning_through(reject_victim)
    for _ in range(3):
        service.run_incremental()
        world.now += timedelta(minutes=1)
    first = [t for t in receiver.texts() if "quarantined" in t]
    other = world.active_employees()[1]
    for _ in range(8):  # the backoff expires, the retry fails, quarantine again: same episode
        world.now += timedelta(minutes=20)
        service.hints.on_hint(Hint(other, "employee.updated", None, "upsert"))
        service.hints.process_hints()  # a pass that does not retry the victim
        service.run_incremental()

    quarantine = [t for t in receiver.texts() if "quarantined" in t]
    assert len(first) == 1 and victim in first[0]
    assert len(quarantine) == 1 and world.store.get_entry(victim).failures > 3


def test_an_unreachable_receiver_never_fails_a_pass_and_the_url_is_not_logged(
    tmp_path, caplog
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    world = World(tmp_path, size=10)
    service = service_for(
        world, f"http://127.0.0.1:{port}{TOKEN_PATH}", RECONCILER_NOTIFY__FAILED_PASSES="1"
    )
    world.hibob.faults.fail_next(1, 401, None)

    with caplog.at_level(logging.INFO):
        assert service.run_incremental().outcome == "failed"
        assert service.run_incremental().outcome == "ok"

    assert "did not reach http://127.0.0.1/…" in caplog.text
    assert "very-secret-token" not in caplog.text


def test_an_alert_the_receiver_refused_is_sent_again_after_the_next_pass(
    tmp_path, receiver
) -> None:
    world = World(tmp_path, size=10)
    service = service_for(world, receiver.url, RECONCILER_NOTIFY__FAILED_PASSES="1")
    receiver.status = 500
    world.hibob.faults.fail_next(2, 401, None)

    service.run_incremental()
    receiver.status = 200
    service.run_incremental()
    service.run_incremental()

    texts = receiver.texts()
    assert [("failed in a row" in t, "recovered" in t) for t in texts] == [
        (True, False),
        (True, False),
        (False, True),
    ]


def test_without_a_webhook_url_nothing_is_sent(tmp_path, receiver) -> None:
    world = World(tmp_path, size=10)
    service = Service(world.services, clock=lambda: world.now)
    world.hibob.faults.fail_next(5, 401, None)

    for _ in range(5):
        service.run_incremental()

    assert receiver.messages == []


def test_a_webhook_url_that_is_not_http_is_refused_without_echoing_it(tmp_path) -> None:
    from reconciler.config import load_settings
    from reconciler.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        load_settings(
            environ={"RECONCILER_NOTIFY__WEBHOOK_URL": "hooks.example/secret"}, read_file=False
        )
    assert "notify" in str(error.value) and "secret" not in str(error.value)
