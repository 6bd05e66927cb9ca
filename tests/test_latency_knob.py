"""The latency fault knob over real loopback HTTP: slow answers within the timeout succeed;
answers slower than the timeout are retried, then reported as unavailable (never an httpx error)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from reconciler.clients.learning import LearningClient
from reconciler.errors import ApiUnavailable
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from reconciler.settings_sections import LearningSettings


@pytest.fixture
def served():
    sim = LearningSimulator(enforce_rate_limits=False)
    with serve(sim.handle) as server:
        yield sim, server.url


def client_for(url: str, timeout_seconds: float) -> LearningClient:
    settings = LearningSettings(
        base_url=url,
        client_id="sandbox-client",
        client_secret=SecretStr("sandbox-secret"),
        timeout_seconds=timeout_seconds,
        max_reads_per_second=1000,
    )
    return LearningClient(settings, sleep=lambda seconds: None)


def test_an_answer_slower_than_usual_but_within_the_timeout_succeeds(served) -> None:
    sim, url = served
    sim.faults.latency_seconds = 0.05
    client = client_for(url, timeout_seconds=2)
    try:
        assert client.get_user(sim.owner_id).status == "active"
    finally:
        client.close()


def test_answers_slower_than_the_timeout_are_retried_then_reported_unavailable(served) -> None:
    sim, url = served
    client = client_for(url, timeout_seconds=0.1)
    sim.faults.latency_seconds = 0.3
    with pytest.raises(ApiUnavailable, match="360Learning"):
        client.get_user(sim.owner_id)
    assert client.stats.retries >= 2
    sim.faults.latency_seconds = 0
    try:
        assert client.get_user(sim.owner_id).status == "active"
    finally:
        client.close()
