"""The simulators' fault knobs and Bob's webhook sender, in-process and over loopback: what the
client sees and what the simulator has applied (fast; `make faults` uses them at scale)."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from reconciler.sandbox.faults import SimulatedTimeout
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.sender import WebhookSender
from reconciler.sandbox.server import serve
from reconciler.service.webhooks import is_signature_valid

BODY = {"mail": "ada@sandbox.test", "membership": {"groupId": None, "role": "learner"}}


@pytest.fixture
def learning() -> LearningSimulator:
    return LearningSimulator(enforce_rate_limits=False)


def _client(
    learning: LearningSimulator,
    transport: httpx.BaseTransport,
    base_url: str = "http://learning.test",
) -> httpx.Client:
    client = httpx.Client(
        base_url=base_url,
        transport=transport,
        timeout=0.5,
        headers={"360-api-version": "v2.0"},
        trust_env=False,
    )
    token = client.post(
        "/api/v2/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    ).json()["access_token"]
    client.headers["authorization"] = f"Bearer {token}"
    return client


def _create(client: httpx.Client, learning: LearningSimulator) -> httpx.Response:
    body = {**BODY, "membership": {"groupId": learning.root_group_id, "role": "learner"}}
    return client.post("/api/v2/users", json=body)


def test_an_answer_lost_after_apply_leaves_the_write_made_and_the_client_without_an_answer(
    learning: LearningSimulator,
) -> None:
    client = _client(learning, httpx.MockTransport(learning.handle))
    learning.faults.drop_after_apply_next(1, method="POST", path_prefix="/api/v2/users")

    with pytest.raises(httpx.RemoteProtocolError):
        _create(client, learning)

    assert "ada@sandbox.test" in learning.users_by_mail()
    assert _create(client, learning).json()["error"]["code"] == "mailAlreadyUsed"
    assert learning.faults.injected == 1


def test_a_timeout_applies_nothing_and_only_matching_requests_are_hit(learning) -> None:
    client = _client(learning, httpx.MockTransport(learning.handle))
    learning.faults.timeout_next(1, method="POST")

    assert client.get("/api/v2/users").status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        _create(client, learning)

    assert "ada@sandbox.test" not in learning.users_by_mail()
    assert _create(client, learning).status_code == 201


def test_on_request_fires_its_callback_when_the_nth_request_arrives(learning) -> None:
    client = _client(learning, httpx.MockTransport(learning.handle))
    learning.faults.on_request(3, learning.expire_tokens)

    statuses = [client.get("/api/v2/users").status_code for _ in range(4)]

    assert statuses == [200, 200, 401, 401]


def test_failures_limited_to_a_path_leave_other_requests_alone(learning) -> None:
    client = _client(learning, httpx.MockTransport(learning.handle))
    learning.faults.fail_next(2, 503, method="POST", path_prefix="/api/v2/users")

    assert client.get("/api/v2/users").status_code == 200
    assert [_create(client, learning).status_code for _ in range(3)] == [503, 503, 201]


def test_served_faults_hold_then_close_the_socket_or_close_it_after_the_write(learning) -> None:
    with serve(learning.handle) as server:
        client = _client(learning, httpx.HTTPTransport(), base_url=server.url)
        learning.faults.timeout_hold_seconds = 1.0
        learning.faults.timeout_next(1)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get("/api/v2/users")
        assert time.monotonic() - started < 1.0  # the client's 0.5 s timeout, not the hold
        learning.faults.drop_after_apply_next(1, method="POST")
        with pytest.raises(httpx.TransportError):
            _create(client, learning)
        assert "ada@sandbox.test" in learning.users_by_mail()
        client.close()


def test_simulated_timeout_is_a_read_timeout() -> None:
    request = httpx.Request("GET", "http://x.test/")
    assert isinstance(SimulatedTimeout("t", request=request), httpx.ReadTimeout)


def test_the_sender_signs_as_bob_and_loses_the_share_of_deliveries_it_is_told_to() -> None:
    hibob = HibobSimulator()
    received: list[tuple[str, bool]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        secret = "up" if request.url.path.endswith("upsert") else "down"
        valid = is_signature_valid(request.content, request.headers["bob-signature"], secret)
        received.append((request.url.path, valid))
        return httpx.Response(202)

    sender = WebhookSender(
        hibob,
        upsert_url="http://127.0.0.1/upsert",
        upsert_secret="up",
        deactivation_url="http://127.0.0.1/deactivation",
        deactivation_secret="down",
        drop_ratio=0.1,
        rng=random.Random(4),
        client=httpx.Client(transport=httpx.MockTransport(receiver)),
    )
    for number in range(200):
        sender.send_change(("title", "terminate")[number % 2], str(number))

    assert len(sender.deliveries) == 300
    assert 15 <= len(sender.lost) <= 45
    assert len(received) == 300 - len(sender.lost)
    assert all(valid for _, valid in received)
    assert {path for path, _ in received} == {"/upsert", "/deactivation"}


def test_the_sender_refuses_a_host_that_is_not_loopback() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        WebhookSender(
            HibobSimulator(),
            upsert_url="https://example.com/up",
            upsert_secret="s",
            deactivation_url="http://127.0.0.1/down",
            deactivation_secret="s",
        )
