"""The service's HTTP side: Hibob webhook receiver, /healthz, /readyz, /metrics (plain WSGI).

`reconciler run` builds the app with `create_app` and serves it with `webserver.serve_webhooks`.
A verified delivery becomes a `Hint` handed to `on_hint` (which stores it durably) before the
answer. The app never acts on an event's content (the employee is re-read), never touches
SQLite itself, and never logs a body, a signature or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from reconciler.core.vocabulary import WebhookResult
from reconciler.redact import remember_secrets
from reconciler.service.metrics import Metrics
from reconciler.settings_sections import WebhookSettings

log = logging.getLogger("reconciler.service.webhooks")

UPSERT_EVENTS = frozenset(
    {"employee.created", "employee.updated", "employee.activated", "employee.joined"}
)
# Hibob has no `employee.terminated` (termination is `employee.left`); accepting it costs nothing.
DEACTIVATION_EVENTS = frozenset(
    {
        "employee.inactivated",
        "employee.terminated",
        "employee.deleted",
        "employee.access.revoked.immediately",
        "employee.left",
    }
)
WEBHOOK_PATHS = {"/webhooks/hibob/upsert": "upsert", "/webhooks/hibob/deactivation": "deactivation"}
_PING = {"text": "Ping test"}
MAX_JSON_DEPTH = 32
"""Bob's events nest 3 deep; json.loads recurses per level, and 1,000 levels raise."""
MAX_ID_CHARS = 64
"""Hibob employee ids are 19 digits; anything longer is not an id."""
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_NESTING = re.compile(rb"[\[\]{}]")
_TEXT = "text/plain; charset=utf-8"

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Hint:
    """ "Go re-read this employee": all a webhook delivery means to the reconciler."""

    hibob_id: str
    event_type: str
    triggered_at: str | None
    source: str
    """The webhook it came in on: "upsert" or "deactivation"."""


@dataclass(frozen=True)
class _Answer:
    status: int
    result: WebhookResult
    """A short fixed token: log word and metric label."""
    event_type: str | None = None
    hibob_id: str | None = None


class WebhookApp:
    """The WSGI callable; it reads at most `max_body_bytes` + 1 bytes of any body."""

    def __init__(
        self,
        settings: WebhookSettings,
        on_hint: Callable[[Hint], None],
        is_ready: Callable[[], tuple[bool, str]],
        metrics: Metrics,
    ) -> None:
        self.max_body_bytes = settings.max_body_bytes
        self._secrets = {
            "upsert": settings.upsert_secret.get_secret_value(),
            "deactivation": settings.deactivation_secret.get_secret_value(),
        }
        remember_secrets(*self._secrets.values())
        self._ignored = frozenset(settings.ignored_events)
        self._on_hint = on_hint
        self._is_ready = is_ready
        self._metrics = metrics
        self._routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: (200, b"ok\n", _TEXT),
            "/readyz": self._readyz,
            "/metrics": self._render_metrics,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        extra: list[tuple[str, str]] = []
        allowed = "POST" if path in WEBHOOK_PATHS else "GET" if path in self._routes else None
        if allowed is None:
            status, body, content_type = 404, b"not found\n", _TEXT
        elif method != allowed:
            status, body, content_type = 405, b"method not allowed\n", _TEXT
            extra.append(("Allow", allowed))
        elif allowed == "POST":
            outcome = self._deliver(WEBHOOK_PATHS[path], environ)
            status, body, content_type = outcome.status, f"{outcome.result}\n".encode(), _TEXT
        else:
            status, body, content_type = self._routes[path]()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def _deliver(self, source: str, environ: dict[str, Any]) -> _Answer:
        outcome = self._receive(source, environ)
        level = logging.INFO if outcome.status < 400 else logging.WARNING
        log.log(
            level,
            "hibob %s webhook: event=%s employee=%s outcome=%s status=%d",
            source,
            _printable(outcome.event_type),
            _printable(outcome.hibob_id),
            outcome.result,
            outcome.status,
            extra={
                key: value
                for key, value in (
                    ("webhook", source),
                    ("event_type", _plain(outcome.event_type or "", 100)),
                    ("employee_id", _plain(outcome.hibob_id or "", 100)),
                    ("outcome", str(outcome.result)),
                    ("http_status", outcome.status),
                )
                if value
            },
        )
        self._metrics.record_webhook(source, outcome.result)
        return outcome

    def _receive(self, source: str, environ: dict[str, Any]) -> _Answer:
        try:
            body = _read_body(environ, self.max_body_bytes)
        except ValueError:
            return _Answer(400, WebhookResult.BAD_CONTENT_LENGTH)
        if body is None:
            return _Answer(413, WebhookResult.TOO_LARGE)
        if _is_ping(body):
            # Whether Bob signs its connection check is undocumented; it carries no data. It passes
            # even without a secret: Bob pings when a webhook is saved, before its token is copied.
            return _Answer(200, WebhookResult.PING)
        secret = self._secrets[source]
        if not secret:
            # Never accept unsigned hints. 503, not 404: Bob retries for days, so deliveries made
            # before the secret is installed still land once it is.
            return _Answer(503, WebhookResult.SECRET_NOT_CONFIGURED)
        signature = environ.get("HTTP_BOB_SIGNATURE", "")
        if not signature:
            return _Answer(401, WebhookResult.NO_SIGNATURE)
        if not is_signature_valid(body, signature, secret):
            return _Answer(401, WebhookResult.BAD_SIGNATURE)
        return self._accept(source, body)

    def _accept(self, source: str, body: bytes) -> _Answer:
        if _is_nested_deeper_than(body, MAX_JSON_DEPTH):
            return _Answer(400, WebhookResult.TOO_DEEP)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: only if the depth check missed
            return _Answer(400, WebhookResult.MALFORMED_JSON)
        event = payload.get("type") if isinstance(payload, dict) else None
        if not isinstance(event, str):
            return _Answer(400, WebhookResult.NO_EVENT_TYPE)
        if event in self._ignored:
            return _Answer(200, WebhookResult.IGNORED, event)
        # Any known event is taken on either path (e.g. an upsert event sent to the deactivation
        # webhook): it is only a hint, the employee is re-read and the decision made from that.
        if event not in UPSERT_EVENTS | DEACTIVATION_EVENTS:
            return _Answer(200, WebhookResult.UNKNOWN_EVENT, event)
        hibob_id = _employee_id(payload)
        if hibob_id is None:
            return _Answer(400, WebhookResult.NO_EMPLOYEE_ID, event)
        hint = Hint(hibob_id, event, _triggered_at(payload), source)
        try:
            self._on_hint(hint)
        except Exception:
            log.exception(
                "hibob %s webhook: storing the hint for employee %s failed", source, hibob_id
            )
            return _Answer(503, WebhookResult.STORE_FAILED, event, hibob_id)
        return _Answer(200, WebhookResult.ACCEPTED, event, hibob_id)

    def _readyz(self) -> tuple[int, bytes, str]:
        try:
            is_ready, reason = self._is_ready()
        except Exception:
            log.exception("readiness check failed")
            is_ready, reason = False, "readiness check failed"
        reason = reason or ("ok" if is_ready else "not ready")
        return (200 if is_ready else 503), f"{reason}\n".encode(), _TEXT

    def _render_metrics(self) -> tuple[int, bytes, str]:
        body, content_type = self._metrics.render()
        return 200, body, content_type


def create_app(
    settings: WebhookSettings,
    *,
    on_hint: Callable[[Hint], None],
    is_ready: Callable[[], tuple[bool, str]],
    metrics: Metrics,
) -> WebhookApp:
    """The WSGI app; a webhook whose secret is empty answers only Bob's Ping test (else 503)."""
    for source in WEBHOOK_PATHS.values():
        if not getattr(settings, f"{source}_secret").get_secret_value():
            log.info(
                "hibob %s webhook disabled: webhooks.%s_secret is not configured", source, source
            )
    return WebhookApp(settings, on_hint, is_ready, metrics)


def is_signature_valid(body: bytes, signature: str, secret: str) -> bool:
    """`Bob-Signature` = Base64(HMAC-SHA512(secret, raw body)), compared in constant time."""
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest())
    # WSGI hands headers over as latin-1 text, so this round-trips any byte a client sent.
    return hmac.compare_digest(expected, signature.strip().encode("latin-1"))


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The raw body, or None when it exceeds `limit`; never reads more than limit + 1 bytes."""
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text:
        length = int(length_text)
        if length < 0:
            raise ValueError(length_text)
        return None if length > limit else stream.read(length)
    body = stream.read(limit + 1)
    return None if len(body) > limit else body


def _is_nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest past `limit` (a cheap scan before json.loads)."""
    depth = 0
    for bracket in _JSON_NESTING.finditer(_JSON_STRING.sub(b'""', body)):
        depth += 1 if bracket.group() in b"[{" else -1
        if depth > limit:
            return True
    return False


def _is_ping(body: bytes) -> bool:
    text = body.strip()
    if text == b"Ping test":
        return True
    if len(text) > 64:
        return False
    try:
        return bool(json.loads(text) == _PING)
    except ValueError:
        return False


def _employee_id(payload: dict[str, Any]) -> str | None:
    data, employee = payload.get("data"), payload.get("employee")
    value = data.get("employeeId") if isinstance(data, dict) else None
    if value is None and isinstance(employee, dict):
        # v1 (legacy) payloads carried the whole record; its id is all we need, so accept them.
        value = employee.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _plain(value.strip(), MAX_ID_CHARS) if isinstance(value, str) else None


def _triggered_at(payload: dict[str, Any]) -> str | None:
    value = payload.get("triggeredAt", payload.get("creationDate"))
    return _plain(value, 40) if isinstance(value, str) else None


def _plain(value: str, max_chars: int) -> str | None:
    """`value` if it is short printable text (it is stored and logged), else None."""
    return value if value and len(value) <= max_chars and value.isprintable() else None


def _printable(value: str | None) -> str:
    return "-" if value is None else repr(value[:100])
