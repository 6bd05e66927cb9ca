"""Fixtures of the fault suite: a World whose clients never really sleep, the suite's random
seed (fixed under CI, random and printed locally), and the figures printed at the end of
`make faults` (kills survived, faults injected, duplicates, lost webhooks...)."""

from __future__ import annotations

import os
import random
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from reconciler.clients.hibob import HibobClient
from reconciler.clients.learning import LearningClient
from tests.support import FakeTime, World

CI_SEED = 20261130
FIGURES: defaultdict[str, float] = defaultdict(float)
NOTES: list[str] = []


def suite_seed() -> int:
    """Where kills land and which webhooks are lost: fixed under CI, else random (FAULTS_SEED
    replays a local run)."""
    if os.environ.get("FAULTS_SEED"):
        return int(os.environ["FAULTS_SEED"])
    if os.environ.get("CI"):
        return CI_SEED
    return random.SystemRandom().randrange(1, 2**31)


def record_figure(name: str, amount: float = 1) -> None:
    FIGURES[name] += amount


def note(line: str) -> None:
    NOTES.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if not FIGURES and not NOTES:
        return
    terminalreporter.section("fault suite figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value:g}")
    for line in NOTES:
        terminalreporter.write_line(line)


class FaultWorld(World):
    """A World whose clients sleep on a fake clock (retries and throttles cost no real time)
    and record every wait, so a test can bound how long a fault made the pass wait."""

    def __init__(self, tmp_path: Path, size: int = 40, seed: int = 7, **settings: str) -> None:
        self.time = FakeTime()
        super().__init__(tmp_path, size=size, seed=seed, **settings)
        self.hibob.search_limit_per_minute = self.hibob.read_limit_per_minute = 10_000
        self.former_mails: dict[str, set[str]] = {}

    def build(self, **overrides: str):
        services = super().build(**overrides)
        services.hibob = HibobClient(
            self.settings.hibob,
            transport=httpx.MockTransport(self.hibob.handle),
            sleep=self.time.sleep,
            clock=self.time.clock,
            wall_clock=self.time.clock,
        )
        services.learning = LearningClient(
            self.settings.learning,
            transport=httpx.MockTransport(self.learning.handle),
            sleep=self.time.sleep,
            clock=self.time.clock,
            wall_clock=self.time.clock,
        )
        self.services = services
        return services

    def injected(self) -> int:
        return self.hibob.faults.injected + self.learning.faults.injected


@pytest.fixture
def fault_world(tmp_path: Path) -> FaultWorld:
    return FaultWorld(tmp_path)
