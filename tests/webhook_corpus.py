"""A seeded corpus of hostile webhook deliveries, and an in-process runner for the WSGI app.

Each case says whether it carries a valid signature for its path, so a test can check that
only verified requests ever become hints. Used by tests/test_webhooks_fuzz.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

UPSERT_SECRET = "fuzz-upsert-secret-0d6b3e"
DEACTIVATION_SECRET = "fuzz-deactivation-secret-91c4aa"
PATHS = {
    "/webhooks/hibob/upsert": UPSERT_SECRET,
    "/webhooks/hibob/deactivation": DEACTIVATION_SECRET,
}
EVENTS = [
    "employee.created",
    "employee.updated",
    "employee.activated",
    "employee.joined",
    "employee.inactivated",
    "employee.deleted",
    "employee.access.revoked.immediately",
    "employee.left",
    "table.entry.updated",
    "",
    "EMPLOYEE.UPDATED",
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "\x00\xff",
    "a" * 3000,
    "",
]


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()


@dataclass
class Case:
    kind: str
    path: str
    body: bytes
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    """WSGI environ keys (HTTP_*, CONTENT_TYPE, CONTENT_LENGTH)."""
    is_signed: bool = False
    """Carries a valid Bob-Signature for its path's secret."""


def _event(rng: random.Random) -> dict[str, Any]:
    employee_id: Any = rng.choice(
        [
            str(rng.randrange(10**18, 10**19)),
            rng.randrange(10**6),
            "",
            " ",
            None,
            True,
            1.5,
            [1],
            {"id": 1},
            "9" * rng.choice([64, 65, 5000]),
            "12\n34",
            "\u202e123",
            "é" * 10,
        ]
    )
    payload: dict[str, Any] = {
        "companyId": rng.randrange(10**6),
        "type": rng.choice(EVENTS),
        "triggeredAt": rng.choice(["2024-12-26T11:29:14.399997", None, 5, "x" * 500]),
        "data": rng.choice([{"employeeId": employee_id}, employee_id, []]),
    }
    if rng.random() < 0.2:
        payload = {"type": payload["type"], "employee": {"id": employee_id}}
    if rng.random() < 0.1:
        payload["padding"] = "x" * rng.randrange(10_000)
    return payload


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice([30, 33, 100, 1000, 10_000, 100_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'{"data":', b"}")])
    inner = opener * depth + b"1" + closer * (depth if rng.random() < 0.8 else 0)
    return b'{"type": "employee.updated", "x": ' + inner + b', "data": {"employeeId": "1"}}'


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 10, 100, 1000, 20_000]))


def _invalid_utf8(rng: random.Random) -> bytes:
    good = json.dumps(_event(rng)).encode()
    cut = rng.randrange(len(good) + 1)
    return (
        good[:cut]
        + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"])
        + good[cut:]
    )


def generate(count: int, seed: int = 8) -> Iterator[Case]:
    """`count` cases drawn from every kind, reproducible for a given seed."""
    rng = random.Random(seed)
    kinds: list[Callable[[random.Random], Case]] = [
        _case_random_bytes,
        _case_signed_garbage,
        _case_lying_length,
        _case_content_type,
        _case_invalid_utf8,
        _case_deep_nesting,
        _case_event,
        _case_wrong_secret,
        _case_odd_signature,
        _case_method_and_path,
        _case_ping,
    ]
    replays: list[Case] = []
    for n in range(count):
        if replays and n % 13 == 0:
            original = rng.choice(replays)
            yield Case(
                "replay",
                original.path,
                original.body,
                headers=dict(original.headers),
                is_signed=original.is_signed,
            )
            continue
        case = kinds[n % len(kinds)](rng)
        if case.is_signed and case.kind == "event":
            replays.append(case)
        yield case


def _signed(path: str, body: bytes) -> dict[str, str]:
    return {"HTTP_BOB_SIGNATURE": sign(body, PATHS[path])}


def _case_random_bytes(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    headers = {
        "HTTP_BOB_SIGNATURE": rng.choice(
            ["", "bm9wZQ==", base64.b64encode(rng.randbytes(64)).decode()]
        )
    }
    return Case("random_bytes", path, _random_bytes(rng), headers=headers)


def _case_signed_garbage(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = rng.choice(
        [
            _random_bytes(rng),
            b"null",
            b"[]",
            b'"x"',
            b"1e999",
            b"{}",
            b"NaN",
            b'{"type": null}',
            b'{"type": ["employee.updated"]}',
        ]
    )
    return Case("signed_garbage", path, body, headers=_signed(path, body), is_signed=True)


def _case_lying_length(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = json.dumps(_event(rng)).encode()
    is_signed = rng.random() < 0.5
    headers = _signed(path, body) if is_signed else {}
    headers["CONTENT_LENGTH"] = rng.choice(
        [
            str(len(body) + rng.randrange(1, 1000)),
            str(max(0, len(body) - 5)),
            "-1",
            "abc",
            str(10**30),
            "99999999999",
            " 12",
            "0x10",
            "",
        ]
    )
    # A shorter Content-Length cuts the body the app reads, and the signature no longer
    # matches; an absent or longer one (in process: the stream just ends) reads it whole.
    length = headers["CONTENT_LENGTH"]
    reads_whole = length == "" or (
        length.strip().isdigit() and len(body) <= int(length) <= 1_048_576
    )
    return Case("lying_length", path, body, headers=headers, is_signed=is_signed and reads_whole)


def _case_content_type(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = rng.choice([json.dumps(_event(rng)).encode(), b"a=1&b=2", _random_bytes(rng)])
    is_signed = rng.random() < 0.5
    headers = _signed(path, body) if is_signed else {}
    headers["CONTENT_TYPE"] = rng.choice(CONTENT_TYPES)
    return Case("content_type", path, body, headers=headers, is_signed=is_signed)


def _case_invalid_utf8(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = _invalid_utf8(rng)
    is_signed = rng.random() < 0.5
    return Case(
        "invalid_utf8",
        path,
        body,
        headers=_signed(path, body) if is_signed else {},
        is_signed=is_signed,
    )


def _case_deep_nesting(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = _nested(rng)
    return Case("deep_nesting", path, body, headers=_signed(path, body), is_signed=True)


def _case_event(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = json.dumps(_event(rng), ensure_ascii=rng.random() < 0.5).encode()
    return Case("event", path, body, headers=_signed(path, body), is_signed=True)


def _case_wrong_secret(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    other = next(secret for p, secret in PATHS.items() if p != path)
    body = json.dumps(_event(rng)).encode()
    secret = rng.choice([other, "", PATHS[path] + "x", PATHS[path].upper()])
    return Case("wrong_secret", path, body, headers={"HTTP_BOB_SIGNATURE": sign(body, secret)})


def _case_odd_signature(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = json.dumps(_event(rng)).encode()
    good = sign(body, PATHS[path])
    odd = rng.choice(
        [
            good[:-1],
            good + "=",
            "  " + good[1:],
            good.lower(),
            "\xff" * 88,
            "A" * 100_000,
            good.replace("+", "-"),
            "\x00",
            base64.b64encode(
                hmac.new(PATHS[path].encode(), body, hashlib.sha256).digest()
            ).decode(),
        ]
    )
    return Case(
        "odd_signature",
        path,
        body,
        headers={"HTTP_BOB_SIGNATURE": odd},
        is_signed=odd.strip() == good,
    )


def _case_method_and_path(rng: random.Random) -> Case:
    path = rng.choice(
        [
            *PATHS,
            "/",
            "/webhooks/hibob/",
            "/webhooks/hibob/upsert/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/%00",
            "/" + "a" * 5000,
        ]
    )
    method = rng.choice(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "\x00"])
    body = json.dumps(_event(rng)).encode()
    headers = _signed(path, body) if path in PATHS else {}
    return Case("method_and_path", path, body, method=method, headers=headers)


def _case_ping(rng: random.Random) -> Case:
    path = rng.choice(list(PATHS))
    body = rng.choice(
        [
            b"Ping test",
            b' {"text":"Ping test"} ',
            b'{"text":"Ping test","x":1}',
            b"Ping test" * 10,
            b"Ping  test",
        ]
    )
    return Case("ping", path, body)


def run_in_process(app: Callable[..., Any], case: Case) -> int:
    """One request through the WSGI app; returns the status (an exception propagates)."""
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": case.method,
        "PATH_INFO": case.path,
        "CONTENT_LENGTH": str(len(case.body)),
        "wsgi.input": io.BytesIO(case.body),
        **case.headers,
    }
    chunks = app(environ, lambda status, headers: statuses.append(status))
    b"".join(chunks)
    return int(statuses[0].split()[0])


def raw_request(case: Case) -> bytes:
    """The case as bytes on the wire (Content-Length as the case says, even when it lies)."""
    lines = [f"{case.method} {case.path} HTTP/1.1", "Host: 127.0.0.1"]
    length = case.headers.get("CONTENT_LENGTH", str(len(case.body)))
    for key, value in case.headers.items():
        if key.startswith("HTTP_"):
            lines.append(f"{key[5:].replace('_', '-').title()}: {value}")
        elif key == "CONTENT_TYPE":
            lines.append(f"Content-Type: {value}")
    if length:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    head = "\r\n".join(lines).encode("latin-1", errors="replace") + b"\r\n\r\n"
    return head + case.body
