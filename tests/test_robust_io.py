"""Upstreams that misbehave never hang a pass (issue 15, items 1-4): paging loops, slow drips,
oversized answers and zero token lifetimes, against the simulators and a misbehaving loopback
server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from pydantic import SecretStr

from reconciler.clients.hibob import HibobClient, search_answer_cap
from reconciler.clients.learning import LearningClient
from reconciler.clients.learning_api import MAX_ANSWER_BYTES as LEARNING_ANSWER_CAP
from reconciler.clients.learning_api import SHORT_TOKEN_LIFETIME_SECONDS
from reconciler.errors import ApiError, ApiUnavailable
from reconciler.sandbox.learning import LearningSimulator
from reconciler.settings_sections import HibobSettings, LearningSettings
from tests.support import FakeTime


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(1000.0)


@pytest.fixture
def sim(fake: FakeTime) -> LearningSimulator:
    return LearningSimulator(clock=fake, sleep=fake.sleep, enforce_rate_limits=False)


def learning_client(sim: LearningSimulator, fake: FakeTime, **settings: object) -> LearningClient:
    values: dict[str, object] = {
        "base_url": "http://learning.test",
        "client_id": "sandbox-client",
        "client_secret": SecretStr("sandbox-secret"),
        "default_group_id": sim.root_group_id,
        "max_writes_per_second": 1000.0,
        "max_reads_per_second": 1000.0,
        **settings,
    }
    return LearningClient(
        LearningSettings(**values),  # type: ignore[arg-type]
        transport=httpx.MockTransport(sim.handle),
        sleep=fake.sleep,
        clock=fake,
    )


def list_calls(sim: LearningSimulator) -> int:
    return sum(1 for m, p, _ in sim.requests if m == "GET" and p == "/api/v2/users")


# -- 1. paging loops --------------------------------------------------------------------------


def seed_users(sim: LearningSimulator, count: int) -> None:
    for n in range(count):
        sim.seed_user(f"user{n}@sandbox.test", firstName="U", lastName=str(n))


def test_a_next_link_pointing_at_the_same_page_stops_paging_with_one_line(sim, fake) -> None:
    sim.page_size = 10
    seed_users(sim, 35)
    sim.faults.loop_next_links(1000, path_prefix="/api/v2/users")
    client = learning_client(sim, fake)

    with pytest.raises(ApiError) as caught:
        list(client.list_users())

    message = str(caught.value)
    assert "\n" not in message and "/api/v2/users" in message
    assert caught.value.code == "pagingLoop"
    assert list_calls(sim) <= 2


def test_a_link_back_to_an_earlier_page_stops_paging(sim, fake) -> None:
    sim.page_size = 10
    seed_users(sim, 35)
    client = learning_client(sim, fake)
    first_page = {}

    def handle(request: httpx.Request) -> httpx.Response:
        response = sim.handle(request)
        if "next" not in request.url.params:
            first_page["url"] = str(request.url)
        elif "url" in first_page:  # every later page links back to the first one
            response.headers["Link"] = f'<{first_page["url"]}>; rel="next"'
        return response

    client = LearningClient(
        client._settings,  # noqa: SLF001 - same settings, another transport
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
    )

    with pytest.raises(ApiError, match="pagingLoop"):
        list(client.list_users())
    assert list_calls(sim) <= 3


def test_a_cursor_that_changes_but_serves_the_same_people_stops_at_the_page_cap(sim, fake) -> None:
    sim.page_size = 10
    seed_users(sim, 35)
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        # Always the first page, with a fresh cursor each time: no link repeats.
        if request.url.path != "/api/v2/users":
            return sim.handle(request)
        calls["n"] += 1
        first = httpx.Request("GET", "http://learning.test/api/v2/users", headers=request.headers)
        response = sim.handle(first)
        response.headers["Link"] = (
            f'<http://learning.test/api/v2/users?next=c{calls["n"]}>; rel="next"'
        )
        return response

    client = LearningClient(
        learning_client(sim, fake)._settings,  # noqa: SLF001
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
    )

    with pytest.raises(ApiError, match="pagingLoop"):
        list(client.list_users())
    assert list_calls(sim) <= 5


def test_honest_paging_still_reads_every_page(sim, fake) -> None:
    sim.page_size = 10
    seed_users(sim, 35)
    client = learning_client(sim, fake)

    users = list(client.list_users())

    assert len(users) == 36  # with the platform owner
    assert list_calls(sim) == 4


def test_a_full_pass_against_a_looping_listing_ends_failed_with_the_endpoint(world) -> None:
    assert world.sync().outcome == "ok"
    world.learning.page_size = 10
    world.learning.faults.loop_next_links(10_000, path_prefix="/api/v2/users")

    result = world.sync("full")

    assert result.outcome == "failed"
    assert "pagingLoop" in (result.error or "") and "/api/v2/users" in (result.error or "")
    assert list_calls(world.learning) < 20


# -- 2. slow drips: every request has an overall deadline ---------------------------------------


class DripServer:
    """A misbehaving HTTP server on 127.0.0.1: it answers every request with `head` and `body`,
    sending the bytes from `drip_from` on one at a time, `interval` seconds apart."""

    def __init__(self, head: bytes, body: bytes, *, drip_from: int, interval: float) -> None:
        self.answer, self.drip_from, self.interval = head + body, drip_from, interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            try:
                conn.sendall(self.answer[: self.drip_from])
                for i in range(self.drip_from, len(self.answer)):
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(self.answer[i : i + 1])
            except OSError:
                return  # the client gave up: what a deadline is for

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def hibob_client(base_url: str, timeout_seconds: float) -> HibobClient:
    settings = HibobSettings(
        base_url=base_url,
        service_user_id="sandbox-user",
        service_user_token=SecretStr("sandbox-token"),
        timeout_seconds=timeout_seconds,
    )
    return HibobClient(settings, sleep=lambda seconds: None)


SEARCH_BODY = json.dumps({"employees": [{"id": "1", "email": "a@b.test"}] * 40}).encode()


def json_head(length: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


@pytest.mark.parametrize("where", ["headers", "body"])
def test_an_answer_dripping_one_byte_at_a_time_ends_at_the_overall_deadline(where) -> None:
    head = json_head(len(SEARCH_BODY))
    drip_from = 5 if where == "headers" else len(head) + 10
    # Each byte comes well within the per-read timeout: only an overall deadline ends it.
    server = DripServer(head, SEARCH_BODY, drip_from=drip_from, interval=0.05)
    client = hibob_client(server.url + "/v1", timeout_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(ApiUnavailable) as caught:
            client.search_employees(["root.email"])
    finally:
        elapsed = time.monotonic() - started
        client.close()
        server.close()

    attempts = server.connections
    assert attempts >= 1
    assert elapsed < attempts * 0.3 + 1.0, f"{attempts} attempts took {elapsed:.1f} s"
    assert "hibob.timeout_seconds" in str(caught.value) and "\n" not in str(caught.value)


def test_a_slow_but_steady_answer_within_the_deadline_is_read() -> None:
    body = json.dumps({"employees": []}).encode()
    head = json_head(len(body))
    server = DripServer(head, body, drip_from=len(head), interval=0.01)
    client = hibob_client(server.url + "/v1", timeout_seconds=5)
    try:
        assert client.search_employees(["root.email"]) == []
    finally:
        client.close()
        server.close()


# -- 3. size caps ---------------------------------------------------------------------------------


class FloodServer:
    """A misbehaving HTTP server on 127.0.0.1 whose answer never stops growing (up to `total`
    bytes): a JSON list of the same employee, repeated. Counts the bytes it got out."""

    def __init__(self, *, total: int, declare_length: bool) -> None:
        self.total, self.declare_length, self.sent = total, declare_length, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            record = b'{"id": "1", "email": "someone@example.test", "work": {"title": "x"}},'
            block = record * (65536 // len(record))
            framing = (
                f"Content-Length: {self.total}"
                if self.declare_length
                else ("Transfer-Encoding: chunked")
            )
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
            try:
                conn.sendall(head.encode())
                while self.sent < self.total:
                    data = b'{"employees": [' + block if self.sent == 0 else block
                    if not self.declare_length:
                        data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
                    conn.sendall(data)
                    self.sent += len(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_huge_hibob_answer_is_cut_at_the_cap_with_a_clear_error(declare_length) -> None:
    server = FloodServer(total=200 * 2**20, declare_length=declare_length)
    client = hibob_client(server.url + "/v1", timeout_seconds=30)
    client.expect_population(60)
    try:
        with pytest.raises(ApiError) as caught:
            client.search_employees(["root.email"])
    finally:
        client.close()
        server.close()

    message = str(caught.value)
    assert caught.value.code == "responseTooLarge", message
    assert "/v1/people/search" in message and "\n" not in message
    assert server.sent < 40 * 2**20  # it stopped reading long before 200 MB


def test_the_search_cap_follows_the_population_and_the_fields() -> None:
    small = search_answer_cap(population=60, fields=15)
    large = search_answer_cap(population=100_000, fields=15)
    first = search_answer_cap(population=None, fields=15)

    assert small < 50 * 2**20  # a 60-person company's 200 MB answer is cut at a quarter
    assert large > 100_000 * 1_500 * 2  # twice what 100,000 people take with these fields
    # A first sync knows no population: 100,000 people's answer (~1.5 kB each) still fits.
    assert first > 100_000 * 1_500 * 2
    assert search_answer_cap(population=60, fields=150) > small


def test_a_360learning_answer_past_its_cap_is_refused(sim, fake) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/users":
            filler = b'{"_id": "x"},' * (LEARNING_ANSWER_CAP // 13 + 10)
            return httpx.Response(
                200,
                content=b"[" + filler + b'{"_id": "y"}]',
                headers={"content-type": "application/json"},
            )
        return sim.handle(request)

    client = LearningClient(
        learning_client(sim, fake)._settings,  # noqa: SLF001
        transport=httpx.MockTransport(handle),
        sleep=fake.sleep,
        clock=fake,
    )

    with pytest.raises(ApiError) as caught:
        list(client.list_users())
    assert caught.value.code == "responseTooLarge"
    assert "/api/v2/users" in str(caught.value)


def test_a_pass_sizes_the_search_cap_from_the_population_the_store_knows(world) -> None:
    assert world.sync().outcome == "ok"
    services = world.build()
    known = world.store.count_employees()

    assert known >= 50
    cap = search_answer_cap(known, 2)
    assert services.hibob._population == known  # noqa: SLF001
    assert cap < search_answer_cap(None, 2)


# -- 4. token lifetimes ----------------------------------------------------------------------------

MISSING = object()


def token_calls(sim: LearningSimulator) -> int:
    return sum(1 for _, path, _ in sim.requests if path == "/api/v2/oauth2/token")


@pytest.mark.parametrize("expires_in", [0, -30, "0", "-1", "soon", None, MISSING, "nan", "inf"])
def test_a_token_lifetime_of_zero_or_garbage_is_a_short_fixed_one(sim, fake, expires_in) -> None:
    sim.advertised_expires_in = expires_in
    client = learning_client(sim, fake)

    for _ in range(20):
        client.get_user(sim.owner_id)
    assert token_calls(sim) == 1  # not one token per call

    fake.sleep(SHORT_TOKEN_LIFETIME_SECONDS + 1)
    client.get_user(sim.owner_id)
    assert token_calls(sim) == 2  # and still renewed, as a short lifetime is
