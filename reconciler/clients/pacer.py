"""Pacing requests to one service: the token bucket, the adaptive (AIMD) pacer and its two lanes.

`ApiSession.send` acquires a slot before each attempt and reports 429s and successes to an
`AdaptiveLimiter`; `priority_lane` lets a hint's requests overtake a long pass's bulk work.
Thread-safe; sleeping and the clock are injected. No HTTP here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_PRIORITY: ContextVar[bool] = ContextVar("reconciler_priority_lane", default=False)


@contextmanager
def priority_lane() -> Iterator[None]:
    """Requests sent inside go ahead of the others waiting in a pacer (a hint's writes
    overtake a long pass's bulk work); threads started inside must enter it themselves."""
    token = _PRIORITY.set(True)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def is_priority_lane() -> bool:
    return _PRIORITY.get()


def enter_lane(priority: bool) -> None:
    """A worker thread's initializer: send in `priority` lane (see `priority_lane`)."""
    _PRIORITY.set(priority)


class RateLimiter:
    """Thread-safe token bucket: `acquire()` blocks (via `sleep`) until a request may go out."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")
        self.rate_per_second = rate_per_second
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = clock()

    def acquire(self) -> None:
        # The token is reserved under the lock (the bucket may go negative), so concurrent
        # callers queue up one interval apart instead of all waking at once.
        with self._lock:
            self._refill()
            self._tokens -= 1
            wait_seconds = -self._tokens / self.rate_per_second if self._tokens < 0 else 0.0
        if wait_seconds > 0:
            self._sleep(wait_seconds)

    def _refill(self) -> float:
        """Credit the tokens earned since the last update at the current rate (lock held)."""
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self.rate_per_second)
        self._updated = now
        return now


class AdaptiveLimiter(RateLimiter):
    """A pacer whose rate follows the server: AIMD, as TCP does with its window.

    Each second without a 429 adds `increase_per_second` to the rate, up to `ceiling` and up
    to 97% of the rate that last met a 429; that remembered rate itself creeps up by a fiftieth
    of the increase each second, so the pacer dwells just under the server's limit and probes
    above it only slowly instead of bouncing off it. A 429 multiplies the rate by `decrease`,
    at most once per `cooldown_seconds` (requests in flight at the old rate come back 429
    together and mean one thing), never below `floor`. `ApiSession.send` reports each answer
    through `record_success`/`record_rate_limited`.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        start: float | None = None,
        floor: float | None = None,
        increase_per_second: float = 1.0,
        decrease: float = 0.7,
        cooldown_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < decrease < 1 or increase_per_second <= 0:
            raise ValueError("decrease must be in (0, 1) and increase_per_second > 0")
        self.ceiling = ceiling
        self.floor = min(ceiling, floor if floor is not None else max(ceiling / 10, 0.1))
        start = ceiling if start is None else start
        super().__init__(min(ceiling, max(self.floor, start)), clock=clock, sleep=sleep)
        self._increase = increase_per_second
        self._decrease = decrease
        self._cooldown = cooldown_seconds
        self._changed_at = clock()
        self._cut_at: float | None = None
        self._refused_rate = float("inf")
        self._next_slot = clock()
        self._turn = threading.Condition(self._lock)
        self._lanes: dict[bool, deque[object]] = {True: deque(), False: deque()}

    def acquire(self, priority: bool | None = None) -> None:
        """Wait for the next slot. Even spacing, no burst credit: a bucket holding one token
        would let rate + 1 requests into some one-second window, and the vendor counts
        exactly those windows. Callers queue in two lanes and the priority lane's (see
        `priority_lane`) go first: only the head of the queue sleeps until the slot."""
        lane = is_priority_lane() if priority is None else priority
        me = object()
        with self._turn:
            self._lanes[lane].append(me)
            try:
                while True:
                    if self._head() is not me:
                        self._turn.wait()
                        continue
                    now = self._clock()
                    if now >= self._next_slot:
                        self._lanes[lane].popleft()
                        self._next_slot = now + 1 / self.rate_per_second
                        return
                    self._lock.release()
                    try:
                        self._sleep(self._next_slot - now)
                    finally:
                        self._lock.acquire()
            finally:
                if me in self._lanes[lane]:
                    self._lanes[lane].remove(me)
                self._turn.notify_all()

    def waiting(self) -> tuple[int, int]:
        """(priority, bulk) callers waiting for a slot."""
        with self._lock:
            return len(self._lanes[True]), len(self._lanes[False])

    def _head(self) -> object | None:
        for lane in (True, False):
            if self._lanes[lane]:
                return self._lanes[lane][0]
        return None

    def record_success(self) -> None:
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._changed_at)
            self._refused_rate += self._increase / 50 * elapsed
            cap = min(self.ceiling, 0.97 * self._refused_rate)
            if self.rate_per_second < cap:
                self.rate_per_second = min(cap, self.rate_per_second + self._increase * elapsed)
            self._changed_at = now

    def record_rate_limited(self) -> None:
        with self._lock:
            now = self._clock()
            if self._cut_at is not None and now - self._cut_at < self._cooldown:
                return
            self._refused_rate = self.rate_per_second
            self.rate_per_second = max(self.floor, self.rate_per_second * self._decrease)
            self._cut_at = self._changed_at = now
