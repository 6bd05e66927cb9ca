"""Progress of a long pass: done/total per phase ("read", "plan", "apply"), the rate and an ETA.

`ProgressTracker` is the `progress` hook a pass calls (from its apply threads too) and keeps
the arithmetic; `PassProgress` publishes it (a log line every N seconds, gauges, and the store's
service_state for `status`) from the service and `sync`; the terminal bar is in `report`.
Decides nothing about users and never reads an API.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.store.database import utc_text

log = logging.getLogger("reconciler.passes.progress")
RATE_WINDOW_SECONDS = 30.0
"""The rate is measured over the last 30 s: recent enough to follow throttling, long enough
not to jump with each write."""


@dataclass(frozen=True)
class ProgressSnapshot:
    phase: str
    done: int
    total: int | None
    rate_per_second: float
    eta_seconds: float | None
    elapsed_seconds: float

    def describe(self) -> str:
        """E.g. "apply 1,234/3,000 (41%) at 8.1/s, about 3 min 38 s left"."""
        return describe_progress(asdict(self))


def compute_eta_seconds(done: int, total: int | None, rate_per_second: float) -> float | None:
    if total is None or rate_per_second <= 0:
        return None
    return max(0, total - done) / rate_per_second


def describe_progress(values: dict[str, Any]) -> str:
    """One line from a snapshot's fields (also read back from the store by `status`)."""
    done, total = values["done"], values.get("total")
    text = f"{values['phase']} {done:,}" + (f"/{total:,}" if total is not None else "")
    if total:
        text += f" ({100 * done // total}%)"
    if values.get("rate_per_second"):
        text += f" at {values['rate_per_second']:.1f}/s"
    if values.get("eta_seconds") is not None and total and done < total:
        text += f", about {format_duration(values['eta_seconds'])} left"
    return text


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressTracker:
    """The `progress` hook: thread-safe; `listeners` hear each update (keep them cheap)."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self._monotonic, self._window = monotonic, window_seconds
        self._lock = threading.Lock()
        self._started = monotonic()
        self._phase, self._done = "read", 0
        self._total: int | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self.listeners: list[Callable[[ProgressSnapshot], None]] = []

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = self._monotonic()
        with self._lock:
            if phase != self._phase:
                self._phase, self._samples = phase, deque()
            self._done, self._total = done, total
            self._samples.append((now, done))
            while len(self._samples) > 2 and self._samples[0][0] < now - self._window:
                self._samples.popleft()
        snapshot = self.snapshot()
        for listener in self.listeners:
            listener(snapshot)

    def snapshot(self) -> ProgressSnapshot:
        now = self._monotonic()
        with self._lock:
            rate = 0.0
            if len(self._samples) >= 2:
                (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
                if last_at > first_at:
                    rate = (last - first) / (last_at - first_at)
            return ProgressSnapshot(
                self._phase,
                self._done,
                self._total,
                rate,
                compute_eta_seconds(self._done, self._total, rate),
                now - self._started,
            )


class PassProgress:
    """Publishes one pass's progress, at most every few seconds.

    A log line every `log_every_seconds`, `set_gauges(done, total, rate)` and, every
    `save_every_seconds`, `save_state({"progress": json})` for `reconciler status`.
    """

    def __init__(
        self,
        pass_label: str,
        *,
        set_gauges: Callable[[int, int, float], None] | None = None,
        save_state: Callable[[dict[str, str | None]], None] | None = None,
        log_every_seconds: float | None = 10.0,
        save_every_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tracker = ProgressTracker(monotonic=monotonic)
        self.tracker.listeners.append(self._publish)
        self._label, self._set_gauges, self._save_state = pass_label, set_gauges, save_state
        self._log_every, self._save_every = log_every_seconds, save_every_seconds
        self._monotonic, self._clock = monotonic, clock
        self._lock = threading.Lock()
        self._logged_at = self._saved_at = monotonic()

    def _publish(self, snapshot: ProgressSnapshot) -> None:
        if self._set_gauges:
            self._set_gauges(snapshot.done, snapshot.total or 0, snapshot.rate_per_second)
        now = self._monotonic()
        with self._lock:
            should_log = self._log_every is not None and now - self._logged_at >= self._log_every
            should_save = now - self._saved_at >= self._save_every or snapshot.done == 0
            self._logged_at = now if should_log else self._logged_at
            self._saved_at = now if should_save else self._saved_at
        if should_save and self._save_state:
            self._save_state(
                {
                    "progress": json.dumps(
                        {"pass": self._label, "at": utc_text(self._clock()), **asdict(snapshot)}
                    )
                }
            )
        if should_log:
            log.info(
                "%s: %s",
                self._label,
                snapshot.describe(),
                extra={
                    "progress": {
                        k: round(v, 1) if isinstance(v, float) else v
                        for k, v in asdict(snapshot).items()
                    }
                },
            )

    def finish(self) -> None:
        if self._set_gauges:
            self._set_gauges(0, 0, 0.0)
        if self._save_state:
            self._save_state({"progress": None})
