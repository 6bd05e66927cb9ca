"""The receiver's server under hostile peers, over real sockets on 127.0.0.1: idle and half-open
connections, slow senders and lying Content-Length never starve /healthz, /readyz or webhooks.
The tests that wait out a deadline are marked `faults`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest
from pydantic import SecretStr

from reconciler.errors import ConfigError
from reconciler.service.metrics import Metrics
from reconciler.service.webhooks import Hint, create_app
from reconciler.service.webserver import ConnectionLimits, WebhookServer, serve_webhooks
from reconciler.settings_sections import WebhookSettings

QUICK_SECONDS = 1.0
"""How fast a health check must answer while the server is under attack."""
LIMITS = ConnectionLimits(
    max_connections=40, max_connections_per_address=8, request_seconds=1, idle_seconds=1
)


@pytest.fixture
def hints() -> list[Hint]:
    return []


@pytest.fixture
def start(hints: list[Hint]) -> Iterator[Callable[..., WebhookServer]]:
    servers: list[WebhookServer] = []

    def run(limits: ConnectionLimits | None = None) -> WebhookServer:
        settings = WebhookSettings(
            upsert_secret=SecretStr("fuzz-upsert-secret-1"),
            deactivation_secret=SecretStr("fuzz-deact-secret-2"),
        )
        app = create_app(
            settings, on_hint=hints.append, is_ready=lambda: (True, "ok"), metrics=Metrics()
        )
        kwargs = {} if limits is None else {"limits": limits}
        servers.append(
            serve_webhooks(app, "127.0.0.1:0", max_body_bytes=settings.max_body_bytes, **kwargs)
        )
        return servers[-1]

    yield run
    for server in servers:
        server.stop()


def address(server: WebhookServer) -> tuple[str, int]:
    url = httpx.URL(server.url)
    return url.host, url.port


def open_idle(
    stack: ExitStack,
    server: WebhookServer,
    count: int,
    *,
    source: str = "127.0.0.1",
    first_bytes: bytes = b"",
) -> list[socket.socket]:
    """`count` connections that send `first_bytes` (maybe nothing) and then go quiet."""
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.socket())
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.connect(address(server))
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def timed_get(server: WebhookServer, path: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        response = httpx.get(server.url + path, timeout=5.0, trust_env=False)
    except httpx.TimeoutException:
        return 0, time.monotonic() - started
    return response.status_code, time.monotonic() - started


def is_closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@pytest.mark.parametrize(
    "first_bytes",
    [b"", b"POST /webhooks/hibob/upsert HTTP/1.1\r\n"],
    ids=["silent", "half-sent headers"],
)
def test_health_checks_answer_quickly_with_150_idle_connections_open(start, first_bytes):
    server = start()

    with ExitStack() as stack:
        open_idle(stack, server, 150, first_bytes=first_bytes)
        answers = [timed_get(server, path) for path in ("/healthz", "/readyz", "/healthz")]

    assert [status for status, _ in answers] == [200, 200, 200]
    assert max(seconds for _, seconds in answers) < QUICK_SECONDS


def test_webhook_delivery_is_stored_while_idle_connections_hold_the_server(start, hints):
    server = start()

    body = json.dumps({"type": "employee.updated", "data": {"employeeId": "42"}}).encode()
    signature = base64.b64encode(hmac.new(b"fuzz-upsert-secret-1", body, hashlib.sha512).digest())

    with ExitStack() as stack:
        open_idle(stack, server, 120)
        response = httpx.post(
            server.url + "/webhooks/hibob/upsert",
            content=body,
            headers={"Bob-Signature": signature.decode()},
            timeout=5.0,
            trust_env=False,
        )

    assert (response.status_code, [hint.hibob_id for hint in hints]) == (200, ["42"])


def test_one_address_holds_at_most_its_share_of_connections(start):
    server = start(LIMITS)

    with ExitStack() as stack:
        sockets = open_idle(stack, server, 20)
        time.sleep(0.3)
        closed = sum(is_closed_by_server(sock, 0.01) for sock in sockets)

    assert closed >= 20 - LIMITS.max_connections_per_address


def test_many_addresses_never_exceed_the_total_and_health_checks_still_answer(start):
    server = start(LIMITS)
    sources = [f"127.0.0.{n}" for n in range(2, 12)]

    with ExitStack() as stack:
        sockets = [
            sock for source in sources for sock in open_idle(stack, server, 6, source=source)
        ]
        time.sleep(0.3)
        still_open = sum(not is_closed_by_server(sock, 0.01) for sock in sockets)
        status, seconds = timed_get(server, "/readyz")

    assert still_open <= LIMITS.max_connections
    assert (status, seconds < QUICK_SECONDS) == (200, True)


@pytest.mark.faults  # waits out a deadline: seconds, not milliseconds
def test_a_peer_that_trickles_its_headers_is_cut_off_after_the_request_deadline(start):
    server = start(LIMITS)

    with ExitStack() as stack:
        (sock,) = open_idle(stack, server, 1, first_bytes=b"POST /webhooks/hibob/upsert HTT")
        started = time.monotonic()
        cut_off = False
        for byte in b"P/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut_off = True
                break
            if is_closed_by_server(sock, 0.2):
                cut_off = True
                break
        elapsed = time.monotonic() - started

    assert cut_off
    assert elapsed < LIMITS.request_seconds + 2.5


@pytest.mark.faults  # waits out a deadline: seconds, not milliseconds
def test_a_lying_content_length_is_cut_off_after_the_request_deadline(start, hints):
    server = start(LIMITS)

    with ExitStack() as stack:
        (sock,) = open_idle(
            stack,
            server,
            1,
            first_bytes=(
                b"POST /webhooks/hibob/upsert HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"
            ),
        )
        started = time.monotonic()
        closed = is_closed_by_server(sock, LIMITS.request_seconds + 2.5)

    assert closed and time.monotonic() - started < LIMITS.request_seconds + 2.5
    assert hints == []


@pytest.mark.faults  # waits out a deadline: seconds, not milliseconds
def test_an_idle_connection_is_closed_after_the_idle_timeout(start):
    server = start(LIMITS)

    with ExitStack() as stack:
        (sock,) = open_idle(stack, server, 1)

        assert is_closed_by_server(sock, LIMITS.idle_seconds + 2.5)


def test_a_huge_content_length_is_refused_without_reading_the_body(start, hints):
    server = start(LIMITS)

    with ExitStack() as stack:
        (sock,) = open_idle(
            stack,
            server,
            1,
            first_bytes=(
                b"POST /webhooks/hibob/upsert HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 99999999999999\r\n\r\n"
            ),
        )
        answer = sock.recv(200)

    assert answer.split(b" ")[1] == b"413"
    assert hints == []


def test_oversized_headers_are_refused(start):
    server = start(LIMITS)

    with ExitStack() as stack:
        (sock,) = open_idle(
            stack,
            server,
            1,
            first_bytes=(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
            ),
        )
        answer = sock.recv(200)

    assert answer.split(b" ")[1] == b"431"


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_address_already_in_use_is_refused_without_leaking_its_socket_or_pipe() -> None:
    """waitress creates its wake-up pipe and the listening socket before it binds: a refused
    bind must close both, or every failed start (and each such test) leaks two descriptors."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = _open_descriptors()
        for _ in range(3):
            with pytest.raises(ConfigError, match="webhooks.listen: cannot listen on"):
                serve_webhooks(lambda *a: [], f"127.0.0.1:{port}", max_body_bytes=1024)
        assert _open_descriptors() == before
