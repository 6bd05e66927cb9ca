"""The admin page's HTTP plumbing: a parsed request, a response with the security headers every
answer carries, the Jinja2 templates (autoescaped) and the local stylesheet.

Used by `admin_page` only. Knows nothing of sessions or the store; sets no header a handler did
not ask for besides the fixed security ones.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).parent
STATIC = {"admin.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
MAX_FORM_BYTES = 65_536
# No script at all, no external anything: styles and images from this listener only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
]
StartResponse = Callable[..., Any]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, list[str]]
    cookies: dict[str, str]
    peer: str
    """The client's address (waitress puts a trusted proxy's X-Forwarded-For here)."""
    is_https: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> Request:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        form: dict[str, list[str]] = {}
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(min(max(length, 0), MAX_FORM_BYTES))
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        query = {
            k: v[-1]
            for k, v in parse_qs(
                str(environ.get("QUERY_STRING", "")), keep_blank_values=True
            ).items()
        }
        return cls(
            method=method,
            path=_path(environ),
            query=query,
            form=form,
            cookies=_cookies(str(environ.get("HTTP_COOKIE", ""))),
            peer=str(environ.get("REMOTE_ADDR", "")),
            is_https=environ.get("wsgi.url_scheme") == "https",
        )

    def field(self, name: str) -> str:
        values = self.form.get(name)
        return values[-1] if values else ""

    def fields(self, name: str) -> list[str]:
        return [v for v in self.form.get(name, []) if v]


def _path(environ: Mapping[str, Any]) -> str:
    raw = str(environ.get("PATH_INFO") or "/")
    try:  # WSGI hands PATH_INFO over as latin-1 text of the raw bytes
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _cookies(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in found:
            found[name] = value.strip()
    return found


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class Response:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        start_response(
            f"{self.status} {phrase}",
            [
                ("Content-Type", self.content_type),
                ("Content-Length", str(len(self.body))),
                *SECURITY_HEADERS,
                *self.headers,
            ],
        )
        return [self.body]


def redirect(location: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """303 See Other: after a POST, the browser GETs the outcome."""
    return Response(b"", 303, "text/plain", [("Location", location), *(headers or [])])


def cookie_header(name: str, value: str, *, is_secure: bool, max_age: int | None = None) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if is_secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def url(path: str, **query: str | int | None) -> str:
    given = [(k, str(v)) for k, v in query.items() if v not in (None, "")]
    text = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in given)
    return f"{path}?{text}" if text else path


class Templates:
    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["url"] = url

    def render(self, template: str, code: int = 200, **context: Any) -> Response:
        body = self.env.get_template(template).render(**context).encode("utf-8")
        return Response(body, code)


def static_file(name: str) -> Response | None:
    content_type = STATIC.get(name)
    if content_type is None:
        return None
    body = (HERE / "static" / name).read_bytes()
    response = Response(body, 200, content_type)
    return response
