"""Secrets echoed by an upstream never reach an error, a log line or the database, and text
from outside is capped (issue 8, break 4)."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from pydantic import SecretStr

from reconciler.clients.hibob import HibobClient
from reconciler.clients.http import ApiSession, AuthHints
from reconciler.clients.learning import LearningClient
from reconciler.clients.transport import build_http_client
from reconciler.commands.logs import configure_logging
from reconciler.errors import ApiError
from reconciler.redact import REDACTED, SecretRegistry, redact, remember_secrets, remember_token
from reconciler.settings_sections import HibobSettings, LearningSettings
from tests.support import FakeTime

CLIENT_SECRET = "CLIENT-SECRET-e8f1a0c3"
HIBOB_TOKEN = "HIBOB-TOKEN-5b7d9e21"


def echo(status: int):
    """An upstream that puts the whole request (body and headers) into its error message."""

    def handle(request: httpx.Request) -> httpx.Response:
        echoed = (
            f"auth={request.headers.get('authorization')} body={request.content!r} "
            f"{request.method} {request.url} {dict(request.headers)}"
        )
        return httpx.Response(
            status, json={"error": "invalid_client", "message": echoed, "error_description": echoed}
        )

    return handle


def test_a_registry_replaces_every_spelling_of_a_secret():
    registry = SecretRegistry()
    registry.remember('p@ss/word+"1"')

    text = registry.redact('raw p@ss/word+"1" json p@ss/word+\\"1\\" url p%40ss%2Fword%2B%221%22')

    assert text == f"raw {REDACTED} json {REDACTED} url {REDACTED}"


def test_a_secret_containing_another_is_redacted_whole():
    registry = SecretRegistry()
    registry.remember("abcdef", "abcdef-ghijkl")

    assert registry.redact("x abcdef-ghijkl y") == f"x {REDACTED} y"


def test_redaction_happens_before_the_cut_so_no_prefix_survives():
    registry = SecretRegistry()
    registry.remember("SECRET-VALUE-123456")

    text = registry.redact("x" * 10 + "SECRET-VALUE-123456", max_chars=20)

    assert "SECRET" not in text and len(text) <= 20


def test_short_and_empty_values_are_not_redacted_as_substrings():
    registry = SecretRegistry()
    registry.remember("", "abc")

    assert registry.redact("abc abcdef") == "abc abcdef"


def test_only_the_latest_bearer_tokens_are_kept_but_configured_secrets_stay():
    registry = SecretRegistry()
    registry.remember("configured-secret")
    for n in range(40):
        registry.remember(f"bearer-token-{n:03d}", is_token=True)

    text = registry.redact("configured-secret bearer-token-039")

    assert text == f"{REDACTED} {REDACTED}"


def test_a_token_endpoint_that_echoes_the_request_leaks_no_client_secret():
    settings = LearningSettings(
        base_url="http://learning.test",
        client_id="client-id-4411",
        client_secret=SecretStr(CLIENT_SECRET),
    )
    client = LearningClient(
        settings, transport=httpx.MockTransport(echo(401)), sleep=lambda s: None
    )

    with pytest.raises(ApiError) as caught:
        client.check_access()

    message = str(caught.value)
    assert CLIENT_SECRET not in message and "client-id-4411" not in message
    assert REDACTED in message and len(message) < 600


def test_an_error_body_echoing_the_basic_auth_header_leaks_neither_token_nor_header():
    settings = HibobSettings(
        base_url="http://hibob.test/v1",
        service_user_id="SERVICE-7788",
        service_user_token=SecretStr(HIBOB_TOKEN),
    )
    client = HibobClient(settings, transport=httpx.MockTransport(echo(400)), sleep=lambda s: None)

    with pytest.raises(ApiError) as caught:
        client.search_employees(["root.id"])

    message = str(caught.value)
    authorization = httpx.BasicAuth("SERVICE-7788", HIBOB_TOKEN)
    header = next(authorization.auth_flow(httpx.Request("GET", "http://x"))).headers
    assert HIBOB_TOKEN not in message and "SERVICE-7788" not in message
    assert header["authorization"].split()[1] not in message


def test_a_bearer_token_echoed_in_a_later_error_is_redacted():
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(
                200, json={"access_token": "BEARER-abcdef123456", "expires_in": 3600}
            )
        return httpx.Response(
            400, json={"error": {"code": "badRequest", "message": str(dict(request.headers))}}
        )

    settings = LearningSettings(
        base_url="http://learning.test",
        client_id="client-id-4411",
        client_secret=SecretStr(CLIENT_SECRET),
    )
    client = LearningClient(settings, transport=httpx.MockTransport(handle), sleep=lambda s: None)

    with pytest.raises(ApiError) as caught:
        client.get_user("u1")

    assert "BEARER-abcdef123456" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "x" * 100_000},
        {"error": {"code": "c" * 100_000, "message": "m" * 100_000}},
        {"key": "k" * 100_000, "error": "e" * 100_000},
        {"errorMessage": "e" * 100_000},
    ],
)
def test_error_text_from_outside_is_capped(body):
    session = ApiSession(
        build_http_client(
            "http://svc.test",
            timeout_seconds=5,
            transport=httpx.MockTransport(lambda r: httpx.Response(400, json=body)),
        ),
        "Svc",
        auth_hints=AuthHints("u", "f"),
        sleep=FakeTime(0).sleep,
    )

    with pytest.raises(ApiError) as caught:
        session.send(lambda: session.client.build_request("GET", "/x"))

    assert len(str(caught.value)) < 800


def test_a_non_json_content_type_from_outside_is_capped_and_redacted():
    remember_secrets("CT-SECRET-998877")
    session = ApiSession(
        build_http_client(
            "http://svc.test",
            timeout_seconds=5,
            transport=httpx.MockTransport(
                lambda r: httpx.Response(
                    200,
                    content=b"<html>",
                    headers={"content-type": "text/html-" + "CT-SECRET-998877" + "y" * 5000},
                )
            ),
        ),
        "Svc",
        auth_hints=AuthHints("u", "f"),
        sleep=FakeTime(0).sleep,
    )

    with pytest.raises(ApiError) as caught:
        session.send(lambda: session.client.build_request("GET", "/x"))

    assert "CT-SECRET-998877" not in str(caught.value) and len(str(caught.value)) < 400


def test_the_log_filter_redacts_messages_arguments_and_exceptions():
    remember_token("LOGGED-TOKEN-424242")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(stream=stream)
        log = logging.getLogger("reconciler.test")
        log.warning("upstream said %s", "LOGGED-TOKEN-424242")
        log.warning("inline LOGGED-TOKEN-424242")
        try:
            raise RuntimeError("boom LOGGED-TOKEN-424242")
        except RuntimeError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    assert "LOGGED-TOKEN-424242" not in stream.getvalue()
    assert REDACTED in lines[0]["message"] and REDACTED in lines[2]["error"]


def test_redact_leaves_text_without_secrets_alone():
    assert redact("360Learning API answered 400 (mailInvalid): bad mail") == (
        "360Learning API answered 400 (mailInvalid): bad mail"
    )


def test_a_broken_log_call_is_left_to_logging_and_not_raised_by_the_filter(monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", False)  # logging's own "Logging error"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(stream=io.StringIO())
        logging.getLogger("reconciler.test").warning("two %s %s", "one")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_extra_fields_of_a_log_line_are_redacted_too():
    remember_secrets("EXTRA-SECRET-5150")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(stream=stream)
        logging.getLogger("reconciler.test").warning(
            "pass failed", extra={"error": "upstream said EXTRA-SECRET-5150", "pass_id": 3}
        )
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    line = json.loads(stream.getvalue())
    assert line["error"] == f"upstream said {REDACTED}" and line["pass_id"] == 3
