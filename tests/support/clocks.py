"""Fake clocks shared by the tests: one that moves when code sleeps, one moved by hand."""

from __future__ import annotations

import threading


class FakeTime:
    """A clock shared by client and simulator that moves only when code sleeps (thread-safe).

    Call it (or `.clock()`) for the time; pass `.sleep` where code would really wait.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class FakeClock:
    """A clock (monotonic or epoch seconds) that moves only when a test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
