"""Reading the vendors' answers into safe text: error bodies, JSON checks, Retry-After.

`parse_error_body` understands both vendors' error shapes; every piece of outside text goes
through `redact` and is capped (`MAX_OUTSIDE_CHARS`) before it becomes part of an error. Used by
`clients.http`'s session and the clients; it sends nothing.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from typing import Any

import httpx

from reconciler.errors import ApiRejected, ApiUnavailable
from reconciler.redact import redact

MAX_OUTSIDE_CHARS = 300
"""Upstream error text kept in an error: one readable line, never a whole echoed request."""


def parse_error_body(response: httpx.Response) -> tuple[str | None, str]:
    """(vendor code, message) from any of the vendors' error shapes; ('', '') when unknown.

    360Learning: {"error": {"code", "message"}} or flat {"error": "code"}.
    Hibob: {"key", "error"} or {"errorMessage"}.
    """
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    if isinstance(error, dict):
        return _text(error.get("code")), _text(error.get("message")) or ""
    if "key" in body:
        return _text(body.get("key")), _text(error) or ""
    if isinstance(error, str):
        return _text(error), _text(body.get("message")) or ""
    return None, _text(body.get("errorMessage")) or ""


def _check_json(response: httpx.Response, service: str, *, parse: bool = True) -> None:
    if not response.content:
        return
    content_type = response.headers.get("content-type", "")
    # Hibob answers a wrong path with 200 text/html: a base URL problem, not data.
    if content_type and "json" not in content_type.lower():
        raise ApiRejected(
            service,
            response.status_code,
            "unexpectedContentType",
            f"expected JSON but got {_text(content_type.split(';')[0], 60)} from "
            f"{response.request.url.path}; check the base URL",
        )
    if not parse:
        return
    try:
        response.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiUnavailable(
            service,
            response.status_code,
            "invalidJson",
            f"response from {response.request.url.path} is not valid JSON",
        ) from None


def _parse_retry_after(raw: str | None, wall_clock: Callable[[], float]) -> float | None:
    if not raw:
        return None
    seconds = _parse_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - wall_clock()


def _parse_float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _describe_transport_error(exc: Exception) -> str:
    # str(exc) names the failure (timeout, reset, refused); httpx never puts headers in it, but a
    # proxy's reason phrase may echo anything.
    text = " ".join(str(exc).split()) or "no detail"
    return redact(f"{type(exc).__name__}: {text}", 200)


def _text(value: Any, max_chars: int = MAX_OUTSIDE_CHARS) -> str | None:
    """Text from an upstream body: one line (the CLI prints errors as one), redacted, capped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    # Redacted before whitespace is folded, which could change a secret's spelling.
    return " ".join(redact(text).split())[:max_chars]


def _join(*parts: str | None) -> str:
    return "; ".join(part for part in parts if part)
