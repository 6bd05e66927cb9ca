"""Fuzzing the webhook receiver (issue 8): random bytes, lying Content-Length, wrong content
types, invalid UTF-8, deep nesting, valid signatures over garbage, odd signatures, replays.

Whatever comes in: never a 5xx, never an exception, and no hint (so no Hibob read) unless the
request carried a valid signature. The fast part runs the WSGI app in process; the big corpus,
the real store and hint worker, and the raw-socket run are marked `faults`.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from webhook_corpus import (
    DEACTIVATION_SECRET,
    EVENTS,
    PATHS,
    UPSERT_SECRET,
    Case,
    generate,
    raw_request,
    run_in_process,
    sign,
)

from reconciler.service.metrics import Metrics
from reconciler.service.webhooks import Hint, create_app
from reconciler.service.webserver import ConnectionLimits, serve_webhooks
from reconciler.settings_sections import WebhookSettings

SETTINGS = WebhookSettings(
    upsert_secret=SecretStr(UPSERT_SECRET), deactivation_secret=SecretStr(DEACTIVATION_SECRET)
)


def make_app(on_hint: Callable[[Hint], None]) -> Any:
    return create_app(SETTINGS, on_hint=on_hint, is_ready=lambda: (True, "ok"), metrics=Metrics())


def check_corpus(app: Any, cases: list[Case], count_hints: Callable[[], int]) -> Counter[str]:
    """Run every case; fail on a 5xx, an exception, or a hint from an unverified request."""
    seen: Counter[str] = Counter()
    for case in cases:
        before = count_hints()
        status = run_in_process(app, case)
        seen[f"{status // 100}xx"] += 1
        assert status < 500, f"{case.kind}: {status} for {case.body[:80]!r} {case.headers}"
        if not case.is_signed:
            assert count_hints() == before, f"{case.kind} stored a hint without a signature"
    return seen


def test_300_hostile_deliveries_never_get_a_5xx_and_only_signed_ones_become_hints():
    hints: list[Hint] = []
    cases = list(generate(300, seed=1))

    seen = check_corpus(make_app(hints.append), cases, lambda: len(hints))

    assert seen["5xx"] == 0 and sum(seen.values()) == 300
    assert {case.kind for case in cases} >= {
        "random_bytes",
        "lying_length",
        "deep_nesting",
        "signed_garbage",
        "invalid_utf8",
        "replay",
    }
    assert hints, "the corpus should also carry deliveries that are real events"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from([*PATHS, "/healthz", "/x"]),
    body=st.binary(max_size=3000),
    signature=st.none() | st.text(max_size=200).map(lambda t: t.encode("utf-8").decode("latin-1")),
    content_length=st.none() | st.text(max_size=12) | st.integers(-5, 10**20).map(str),
    content_type=st.none() | st.text(max_size=40),
)
def test_arbitrary_bytes_and_headers_never_get_a_5xx_or_a_hint(
    path, body, signature, content_length, content_type
):
    hints: list[Hint] = []
    headers = {
        key: value
        for key, value in (
            ("HTTP_BOB_SIGNATURE", signature),
            ("CONTENT_LENGTH", content_length),
            ("CONTENT_TYPE", content_type),
        )
        if value is not None
    }

    status = run_in_process(make_app(hints.append), Case("hypothesis", path, body, headers=headers))

    assert status < 500 and hints == []


@settings(max_examples=100, deadline=None)
@given(
    payload=json_values
    | st.fixed_dictionaries(
        {
            "type": st.sampled_from(EVENTS) | st.text(max_size=20),
            "data": json_values | st.fixed_dictionaries({"employeeId": json_values}),
        }
    ),
    path=st.sampled_from(list(PATHS)),
)
def test_any_signed_json_gets_200_or_400_and_a_hint_only_for_a_known_event(payload, path):
    hints: list[Hint] = []
    body = json.dumps(payload).encode()
    case = Case(
        "signed_json",
        path,
        body,
        headers={"HTTP_BOB_SIGNATURE": sign(body, PATHS[path])},
        is_signed=True,
    )

    status = run_in_process(make_app(hints.append), case)

    assert status in (200, 400)
    for hint in hints:
        assert hint.event_type in EVENTS and hint.hibob_id.isprintable()
        assert 0 < len(hint.hibob_id) <= 64


# -- the big corpus, the real store and the raw socket (make faults) ----------------------------

FAULTS_CORPUS = 3000


@pytest.mark.faults
def test_3000_hostile_deliveries_through_the_real_store_never_5xx_and_never_read_hibob(
    tmp_path: Path,
):
    from conftest import World

    from reconciler.service.lifecycle import Service

    world = World(tmp_path, size=20, RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0")
    service = Service(world.services, clock=lambda: world.now)
    app = make_app(service.hints.on_hint)
    cases = list(generate(FAULTS_CORPUS, seed=2026))
    unverified = [case for case in cases if not case.is_signed]

    seen = check_corpus(app, unverified, world.store.count_pending_hints)
    hibob_reads_before = len(world.hibob.requests)
    passes = service.hints.process_hints()

    assert (world.store.count_pending_hints(), passes) == (0, 0)
    assert len(world.hibob.requests) == hibob_reads_before == 0
    seen += check_corpus(
        app, [case for case in cases if case.is_signed], world.store.count_pending_hints
    )
    print(
        f"\nwebhook fuzz (in process, real store): {sum(seen.values())} inputs, "
        f"{len(unverified)} unverified, answers {dict(seen)}, 5xx: {seen['5xx']}"
    )
    assert seen["5xx"] == 0 and sum(seen.values()) == FAULTS_CORPUS


def send_raw(url: str, data: bytes) -> int | None:
    """The status the server answered, or None when it closed without an answer."""
    address = httpx.URL(url)
    with socket.create_connection((address.host, address.port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server refused early (e.g. 413) and closed; read what it said
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (ConnectionError, TimeoutError):
            pass
    parts = received.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@pytest.mark.faults
def test_600_hostile_deliveries_on_the_wire_never_5xx_and_health_checks_still_answer():
    hints: list[Hint] = []
    server = serve_webhooks(
        make_app(hints.append),
        "127.0.0.1:0",
        max_body_bytes=SETTINGS.max_body_bytes,
        limits=ConnectionLimits(request_seconds=1, idle_seconds=2),
    )
    cases = list(generate(600, seed=77))
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda case: send_raw(server.url, raw_request(case)), cases))
        started = time.monotonic()
        health = httpx.get(server.url + "/healthz", timeout=5, trust_env=False)
        health_seconds = time.monotonic() - started
    finally:
        server.stop()

    seen = Counter("closed" if s is None else f"{s // 100}xx" for s in statuses)
    unsigned_hints = len(hints) - sum(case.is_signed for case in cases)
    print(
        f"\nwebhook fuzz (raw sockets): {len(cases)} inputs, answers {dict(seen)}, "
        f"5xx: {seen['5xx']}"
    )
    assert seen["5xx"] == 0
    assert unsigned_hints <= 0
    assert health.status_code == 200 and health_seconds < 1.0
