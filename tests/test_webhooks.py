"""The webhook receiver over real HTTP on waitress: verification, limits, hints, routes, stop."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from reconciler.errors import ConfigError
from reconciler.service import webhooks as webhooks_module
from reconciler.service.metrics import Metrics
from reconciler.service.webhooks import Hint, create_app
from reconciler.service.webserver import serve_webhooks
from reconciler.settings_sections import WebhookSettings

UPSERT_SECRET = "upsert-secret-4f1c9a"
DEACTIVATION_SECRET = "deactivation-secret-77be02"
UPSERT = "/webhooks/hibob/upsert"
DEACTIVATION = "/webhooks/hibob/deactivation"
LIMIT = 4096


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()


def event(
    event_type: str = "employee.updated", employee_id: str = "3332883894235038486", **extra: object
) -> bytes:
    payload = {
        "companyId": 637323,
        "type": event_type,
        "triggeredBy": "system",
        "triggeredAt": "2024-12-26T11:29:14.399997",
        "version": "v2",
        "data": {"employeeId": employee_id},
        **extra,
    }
    return json.dumps(payload).encode()


class Receiver:
    """A served app plus what its callbacks saw."""

    def __init__(
        self,
        settings: WebhookSettings,
        on_hint: Callable[[Hint], None] | None,
        client: httpx.Client,
    ) -> None:
        self.hints: list[Hint] = []
        self.ready: tuple[bool, str] = (True, "last pass 12 s ago")
        self.metrics = Metrics()
        app = create_app(
            settings,
            on_hint=on_hint or self.hints.append,
            is_ready=lambda: self.ready,
            metrics=self.metrics,
        )
        self.server = serve_webhooks(app, "127.0.0.1:0", max_body_bytes=settings.max_body_bytes)
        self.client = client

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.client.request(method, self.server.url + path, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, body: bytes, secret: str | None = None, **headers: str):
        if secret is not None:
            headers["Bob-Signature"] = sign(body, secret)
        return self.request("POST", path, content=body, headers=headers)

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One client for the module: building one costs ~50 ms (TLS context), even for plain HTTP.
    with httpx.Client(timeout=5.0, trust_env=False) as shared:
        yield shared


@pytest.fixture
def serve(client) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(on_hint: Callable[[Hint], None] | None = None, **settings: object) -> Receiver:
        values = {
            "upsert_secret": SecretStr(UPSERT_SECRET),
            "deactivation_secret": SecretStr(DEACTIVATION_SECRET),
            "max_body_bytes": LIMIT,
            **settings,
        }
        started.append(Receiver(WebhookSettings(**values), on_hint, client))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def receiver(serve) -> Receiver:
    return serve()


def test_signed_upsert_is_stored_as_a_hint_before_the_200(receiver):
    response = receiver.post(UPSERT, event("employee.updated", "123"), UPSERT_SECRET)

    assert response.status_code == 200
    assert receiver.hints == [
        Hint(
            hibob_id="123",
            event_type="employee.updated",
            triggered_at="2024-12-26T11:29:14.399997",
            source="upsert",
        )
    ]


def test_signed_deactivation_event_is_stored_with_its_webhook_as_source(receiver):
    response = receiver.post(
        DEACTIVATION, event("employee.access.revoked.immediately", "9"), DEACTIVATION_SECRET
    )

    assert response.status_code == 200
    assert receiver.hints == [
        Hint(
            "9", "employee.access.revoked.immediately", "2024-12-26T11:29:14.399997", "deactivation"
        )
    ]


def test_event_sent_to_the_other_webhook_path_is_still_a_hint(receiver):
    response = receiver.post(DEACTIVATION, event("employee.joined", "5"), DEACTIVATION_SECRET)

    assert response.status_code == 200
    assert [(h.hibob_id, h.event_type, h.source) for h in receiver.hints] == [
        ("5", "employee.joined", "deactivation")
    ]


def test_v1_legacy_payload_is_taken_by_its_employee_id(receiver):
    body = json.dumps(
        {
            "companyId": 1,
            "type": "employee.created",
            "employee": {"id": "777", "email": "a@example.com"},
            "data": {"root": {"id": "777"}},
            "creationDate": "2023-01-01T10:00:00",
        }
    )

    response = receiver.post(UPSERT, body.encode(), UPSERT_SECRET)

    assert response.status_code == 200
    assert receiver.hints == [Hint("777", "employee.created", "2023-01-01T10:00:00", "upsert")]


@pytest.mark.parametrize("headers", [{}, {"Bob-Signature": ""}, {"Bob-Signature": "bm9wZQ=="}])
def test_missing_or_bad_signature_is_refused_and_nothing_stored(receiver, headers):
    response = receiver.post(UPSERT, event(), **headers)

    assert response.status_code == 401
    assert receiver.hints == []


def test_signature_of_another_body_does_not_validate(receiver):
    signature = sign(event(employee_id="1"), UPSERT_SECRET)

    response = receiver.post(UPSERT, event(employee_id="2"), **{"Bob-Signature": signature})

    assert response.status_code == 401
    assert receiver.hints == []


def test_the_other_webhooks_secret_does_not_validate(receiver):
    on_upsert = receiver.post(UPSERT, event(), DEACTIVATION_SECRET)
    on_deactivation = receiver.post(DEACTIVATION, event("employee.inactivated"), UPSERT_SECRET)

    assert (on_upsert.status_code, on_deactivation.status_code) == (401, 401)
    assert receiver.hints == []


@pytest.mark.parametrize("body", [b"Ping test", b'{"text":"Ping test"}', b'{"text": "Ping test"}'])
@pytest.mark.parametrize("path", [UPSERT, DEACTIVATION])
def test_ping_test_is_answered_200_without_a_signature(receiver, body, path):
    response = receiver.post(path, body)

    assert response.status_code == 200
    assert receiver.hints == []


def test_ping_bodies_of_the_hibob_simulator_pass_and_its_signature_validates(receiver):
    simulator = pytest.importorskip("reconciler.sandbox.hibob")
    body = event("employee.activated", "31")
    pings = [receiver.post(UPSERT, ping).status_code for ping in simulator.ping_bodies()]

    response = receiver.post(UPSERT, body, **{"Bob-Signature": simulator.sign(body, UPSERT_SECRET)})

    assert pings == [200, 200]
    assert response.status_code == 200
    assert [hint.hibob_id for hint in receiver.hints] == ["31"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"data": {}}'])
def test_signed_body_that_is_not_an_event_object_is_400(receiver, body):
    response = receiver.post(UPSERT, body, UPSERT_SECRET)

    assert response.status_code == 400
    assert receiver.hints == []


@pytest.mark.parametrize("data", [{}, {"employeeId": ""}, {"employeeId": None}, "x"])
def test_known_event_without_an_employee_id_is_400(receiver, data):
    body = json.dumps({"type": "employee.updated", "data": data}).encode()

    response = receiver.post(UPSERT, body, UPSERT_SECRET)

    assert response.status_code == 400
    assert receiver.hints == []


def test_body_over_the_limit_with_content_length_is_413_and_not_stored(receiver):
    body = event(padding="x" * LIMIT)

    response = receiver.post(UPSERT, body, UPSERT_SECRET)

    assert response.status_code == 413
    assert receiver.hints == []


def test_chunked_body_over_the_limit_is_413_and_not_stored(receiver):
    body = event(padding="x" * LIMIT)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))

    response = receiver.request(
        "POST", UPSERT, content=chunks, headers={"Bob-Signature": sign(body, UPSERT_SECRET)}
    )

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413
    assert receiver.hints == []


def test_body_at_the_limit_is_accepted(receiver):
    body = event(employee_id="8")
    body = body[:-1] + b', "padding": "' + b"x" * (LIMIT - len(body) - 15) + b'"}'
    assert len(body) == LIMIT

    assert receiver.post(UPSERT, body, UPSERT_SECRET).status_code == 200


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_total = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_total += len(chunk)
        return chunk


@pytest.mark.parametrize("content_length", ["", str(LIMIT * 100)])
def test_app_alone_answers_413_reading_at_most_limit_plus_one_bytes(content_length):
    app = create_app(
        WebhookSettings(upsert_secret=SecretStr(UPSERT_SECRET), max_body_bytes=LIMIT),
        on_hint=lambda hint: None,
        is_ready=lambda: (True, ""),
        metrics=Metrics(),
    )
    stream = CountingStream(b"x" * (LIMIT * 100))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": UPSERT,
        "CONTENT_LENGTH": content_length,
        "wsgi.input": stream,
    }
    statuses: list[str] = []

    app(environ, lambda status, headers: statuses.append(status))

    assert statuses == ["413 Request Entity Too Large"]
    assert stream.read_total <= LIMIT + 1


def test_ignored_event_employee_left_is_acknowledged_and_not_stored(receiver):
    response = receiver.post(DEACTIVATION, event("employee.left"), DEACTIVATION_SECRET)

    assert response.is_success
    assert receiver.hints == []


def test_employee_left_becomes_a_hint_when_not_ignored(serve):
    receiver = serve(ignored_events=[])

    response = receiver.post(DEACTIVATION, event("employee.left", "4"), DEACTIVATION_SECRET)

    assert response.status_code == 200
    assert [hint.event_type for hint in receiver.hints] == ["employee.left"]


@pytest.mark.parametrize("event_type", ["table.entry.updated", "timeoff.request.created"])
def test_unknown_event_is_acknowledged_and_not_stored(receiver, event_type):
    response = receiver.post(UPSERT, event(event_type), UPSERT_SECRET)

    assert response.is_success
    assert receiver.hints == []


def test_failing_store_answers_503_so_hibob_retries(serve):
    def on_hint(hint: Hint) -> None:
        raise OSError("database is locked")

    receiver = serve(on_hint=on_hint)

    assert receiver.post(UPSERT, event(), UPSERT_SECRET).status_code == 503


def test_webhook_without_a_secret_passes_ping_but_refuses_events_with_503_and_says_why(
    serve, caplog
):
    caplog.set_level(logging.INFO, logger="reconciler.service.webhooks")
    receiver = serve(deactivation_secret=SecretStr(""))

    ping = receiver.post(DEACTIVATION, b"Ping test")
    unsigned = receiver.post(DEACTIVATION, event("employee.inactivated"))
    signed_with_empty_key = receiver.post(DEACTIVATION, event("employee.inactivated"), "")

    assert (ping.status_code, unsigned.status_code, signed_with_empty_key.status_code) == (
        200,
        503,
        503,
    )
    assert receiver.hints == []
    assert "deactivation_secret is not configured" in caplog.text
    assert "secret_not_configured" in caplog.text


def test_healthz_answers_ok(receiver):
    response = receiver.get("/healthz")

    assert (response.status_code, response.text) == (200, "ok\n")


def test_readyz_follows_the_readiness_callback(receiver):
    ready = receiver.get("/readyz")
    receiver.ready = (False, "last successful pass 47 min ago")
    not_ready = receiver.get("/readyz")

    assert (ready.status_code, ready.text) == (200, "last pass 12 s ago\n")
    assert (not_ready.status_code, not_ready.text) == (503, "last successful pass 47 min ago\n")


def test_readyz_is_503_when_the_callback_raises(serve):
    receiver = serve()
    receiver.ready = None  # unpacking fails inside the app

    assert receiver.get("/readyz").status_code == 503


def test_metrics_serves_prometheus_text_counting_deliveries(receiver):
    receiver.post(UPSERT, event(), UPSERT_SECRET)
    receiver.post(UPSERT, event())
    receiver.metrics.set_state(pending_hints=3, held_deactivations=0, quarantined=1)

    response = receiver.get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert (
        'reconciler_webhook_deliveries_total{outcome="accepted",webhook="upsert"} 1.0'
        in response.text
    )
    assert (
        'reconciler_webhook_deliveries_total{outcome="no_signature",webhook="upsert"} 1.0'
        in response.text
    )
    assert "reconciler_pending_hints 3.0" in response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nope", 404, None),
        ("GET", UPSERT + "/", 404, None),
        ("GET", UPSERT, 405, "POST"),
        ("PUT", DEACTIVATION, 405, "POST"),
        ("POST", "/healthz", 405, "GET"),
        ("DELETE", "/metrics", 405, "GET"),
    ],
)
def test_unknown_paths_are_404_and_wrong_methods_405(receiver, method, path, status, allow):
    response = receiver.request(method, path)

    assert response.status_code == status
    assert response.headers.get("Allow") == allow
    assert receiver.hints == []


def test_logs_say_event_employee_and_outcome_but_never_body_signature_or_secret(serve, caplog):
    def failing_store(hint: Hint) -> None:
        raise RuntimeError("store down")

    caplog.set_level(logging.DEBUG)
    receiver = serve(on_hint=failing_store)
    body = event("employee.updated", "424242", marker="BODY-MARKER-5c1e")

    receiver.post(UPSERT, body, UPSERT_SECRET)
    receiver.post(UPSERT, body, DEACTIVATION_SECRET)
    receiver.post(UPSERT, b"{broken BODY-MARKER-5c1e", UPSERT_SECRET)

    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.service.webhooks"]
    assert any(
        "employee.updated" in line and "424242" in line and "store_failed" in line for line in lines
    )
    assert any("bad_signature" in line for line in lines)
    assert any("malformed_json" in line for line in lines)
    everything = caplog.text + "".join(lines)
    for secret_or_body in (
        UPSERT_SECRET,
        DEACTIVATION_SECRET,
        sign(body, UPSERT_SECRET),
        sign(body, DEACTIVATION_SECRET),
        "BODY-MARKER-5c1e",
    ):
        assert secret_or_body not in everything


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def refuses_connections(url: str) -> bool:
    address = httpx.URL(url)
    try:
        socket.create_connection((address.host, address.port), timeout=0.5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True  # reset: it reached the backlog just as the listening socket closed
    return False


def test_stop_refuses_new_connections_but_lets_a_request_in_flight_finish(serve):
    entered, release = threading.Event(), threading.Event()
    stored: list[Hint] = []

    def slow_store(hint: Hint) -> None:
        entered.set()
        release.wait(5)
        stored.append(hint)

    receiver = serve(on_hint=slow_store)
    answers: list[httpx.Response] = []
    poster = threading.Thread(
        target=lambda: answers.append(receiver.post(UPSERT, event(employee_id="66"), UPSERT_SECRET))
    )
    poster.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=receiver.server.stop)
    stopper.start()

    assert wait_until(lambda: refuses_connections(receiver.server.url))
    assert stopper.is_alive()
    release.set()
    poster.join(5)
    stopper.join(5)

    assert [answer.status_code for answer in answers] == [200]
    assert [hint.hibob_id for hint in stored] == ["66"]
    assert not stopper.is_alive()


def test_url_reports_the_port_actually_bound(receiver):
    url = httpx.URL(receiver.server.url)

    assert (url.host, url.port != 0) == ("127.0.0.1", True)
    assert receiver.get("/healthz").status_code == 200


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost:http", ":8480"])
def test_listen_without_host_and_port_is_a_config_error(listen):
    app = create_app(
        WebhookSettings(), on_hint=lambda hint: None, is_ready=lambda: (True, ""), metrics=Metrics()
    )

    with pytest.raises(ConfigError, match="webhooks.listen"):
        serve_webhooks(app, listen, max_body_bytes=LIMIT)


def test_listen_on_a_port_already_taken_is_a_config_error(receiver):
    app = create_app(
        WebhookSettings(), on_hint=lambda hint: None, is_ready=lambda: (True, ""), metrics=Metrics()
    )
    taken = receiver.server.url.removeprefix("http://")

    with pytest.raises(ConfigError, match="cannot listen on"):
        serve_webhooks(app, taken, max_body_bytes=LIMIT)


def test_accepted_delivery_is_answered_200_because_bob_may_disconnect_other_answers(receiver):
    # Hibob, "Working with webhooks": a listener answering other than 200 may be considered
    # disconnected (an older page: Bob then inactivates the webhook). Not 202, not 204.
    response = receiver.post(UPSERT, event("employee.created", "12"), UPSERT_SECRET)

    assert (response.status_code, len(receiver.hints)) == (200, 1)


def test_the_wsgi_app_module_knows_nothing_of_the_server():
    source = Path(webhooks_module.__file__).read_text(encoding="utf-8")
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }

    assert not any(name.startswith("waitress") for name in imported)


def call_app(
    body: bytes, *, secret: str | None = UPSERT_SECRET, limit: int = 1_048_576, **environ: str
) -> tuple[int, list[Hint]]:
    """One request through the WSGI app in-process: (status, hints stored)."""
    hints: list[Hint] = []
    app = create_app(
        WebhookSettings(
            upsert_secret=SecretStr(UPSERT_SECRET),
            deactivation_secret=SecretStr(DEACTIVATION_SECRET),
            max_body_bytes=limit,
        ),
        on_hint=hints.append,
        is_ready=lambda: (True, ""),
        metrics=Metrics(),
    )
    headers = {} if secret is None else {"HTTP_BOB_SIGNATURE": sign(body, secret)}
    statuses: list[str] = []
    app(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": UPSERT,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            **headers,
            **environ,
        },
        lambda status, headers: statuses.append(status),
    )
    return int(statuses[0].split()[0]), hints


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type": "employee.updated", "data": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
        b'{"type": "employee.updated", "data": {"employeeId": "1"}, "x": ' + b"[" * 5000,
    ],
    ids=["deep array", "deep object", "deep and unterminated"],
)
def test_signed_deeply_nested_body_is_400_not_500(body):
    assert call_app(body) == (400, [])


def test_nesting_inside_strings_does_not_count_as_depth():
    body = event("employee.updated", "5", note="[[[[{{{{" * 1000 + '\\"' + "]]]]" * 100)

    status, hints = call_app(body)

    assert (status, [hint.hibob_id for hint in hints]) == (200, ["5"])


@pytest.mark.parametrize("employee_id", ["9" * 65, "12\n34", "\x00", "12\u202e34"])
def test_signed_event_with_an_implausible_employee_id_is_400_and_not_stored(employee_id):
    assert call_app(event(employee_id=employee_id)) == (400, [])


def test_an_oversized_triggered_at_is_dropped_not_stored():
    body = event(employee_id="7", triggeredAt="2024-01-01T00:00:00" + "x" * 10_000)

    status, hints = call_app(body)

    assert (status, [hint.triggered_at for hint in hints]) == (200, [None])


def test_webhook_log_lines_carry_structured_fields_as_pass_lines_do(serve, caplog):
    # Issue 15 item 17: a JSON log reader filters on fields, not on the message text.
    from reconciler.commands.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="reconciler.service.webhooks")
    receiver = serve()
    receiver.post(UPSERT, event("employee.updated", "777"), UPSERT_SECRET)
    receiver.post(UPSERT, event("employee.updated", "778"), DEACTIVATION_SECRET)

    accepted, refused = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.name == "reconciler.service.webhooks"
    ]
    assert {k: accepted[k] for k in ("webhook", "event_type", "employee_id", "outcome")} == {
        "webhook": "upsert",
        "event_type": "employee.updated",
        "employee_id": "777",
        "outcome": "accepted",
    }
    assert accepted["http_status"] == 200
    assert refused["outcome"] == "bad_signature" and refused["http_status"] == 401
    assert "employee_id" not in refused  # an unverified body's claims are not logged as facts
