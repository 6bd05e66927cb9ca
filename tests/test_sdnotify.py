"""systemd's notify protocol against a fake notify socket: datagrams on a path or in the
abstract namespace, no-ops outside systemd, the watchdog period, and the READY / WATCHDOG /
STOPPING handshake of `reconciler run`."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.service import sdnotify


class FakeNotifySocket:
    """What systemd listens on: a unix datagram socket that records every message."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def states(self) -> list[str]:
        return [
            line.split("=", 1)[0] for _, message in self.messages for line in message.splitlines()
        ]

    def wait_for(self, state: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while state not in self.states():
            assert time.monotonic() < deadline, f"no {state} within {timeout} s: {self.states()}"
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[FakeNotifySocket]:
    fake = FakeNotifySocket(f"@reconciler-test-{uuid.uuid4().hex}")
    yield fake
    fake.close()


@pytest.fixture
def path_socket() -> Iterator[FakeNotifySocket]:
    # A short folder: socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn") as folder:
        fake = FakeNotifySocket(str(Path(folder) / "notify"))
        yield fake
        fake.close()


@pytest.mark.parametrize("fixture", ["abstract_socket", "path_socket"])
def test_notify_sends_the_state_as_one_datagram(fixture, request) -> None:
    fake = request.getfixturevalue(fixture)

    assert sdnotify.notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": fake.address})

    fake.wait_for("STATUS")
    assert [message for _, message in fake.messages] == ["READY=1\nSTATUS=serving"]


def test_notify_does_nothing_outside_systemd() -> None:
    assert sdnotify.notify("READY=1", {}) is False


def test_notify_to_a_socket_nobody_listens_on_is_logged_not_raised(tmp_path, caplog) -> None:
    assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),  # watches another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_pings_at_half_of_systemds_period(environ, expected) -> None:
    assert sdnotify.watchdog_interval_seconds(environ) == expected


def test_run_tells_systemd_ready_then_pings_the_watchdog_then_stopping(
    world, abstract_socket, monkeypatch
) -> None:
    from reconciler.service.lifecycle import run_service

    monkeypatch.setenv("NOTIFY_SOCKET", abstract_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # a ping every 0.15 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    services = world.build(RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}

    def systemd_stops_the_unit() -> None:
        deadline = time.monotonic() + 10
        while abstract_socket.states().count("WATCHDOG") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # even without pings, so the test cannot hang

    stopper = threading.Thread(target=systemd_stops_the_unit, daemon=True)
    stopper.start()
    try:
        code = run_service(services)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    stopper.join()

    states = [s for s in abstract_socket.states() if s != "STATUS"]
    assert code == 0
    assert states[0] == "READY" and states[-1] == "STOPPING"
    assert states.count("WATCHDOG") >= 3 and states.count("READY") == 1


def test_a_start_that_fails_never_tells_systemd_ready(world, abstract_socket, monkeypatch) -> None:
    from reconciler.errors import ConfigError
    from reconciler.service.lifecycle import run_service

    monkeypatch.setenv("NOTIFY_SOCKET", abstract_socket.address)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        services = world.build(RECONCILER_WEBHOOKS__LISTEN=f"127.0.0.1:{port}")
        saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            with pytest.raises(ConfigError, match="webhooks.listen"):
                run_service(services)
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)

    time.sleep(0.1)  # anything sent would have arrived by now
    assert "READY" not in abstract_socket.states()
