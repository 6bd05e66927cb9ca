"""Fault knobs shared by both simulators: fail, throttle, slow down or drop the next requests.

Each simulator owns one `Faults` and calls `Faults.intercept(request)` first in `handle`; a
non-None answer replaces the normal response. Dropped connections raise `httpx` transport
errors, which `httpx.MockTransport` passes to the client and the loopback server turns into a
closed socket. Thread-safe: the served simulators handle requests on several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


class DropConnection(httpx.RemoteProtocolError):
    """Raised by a simulator to model a connection closed without an answer."""


@dataclass
class _Failure:
    remaining: int
    status: int
    body: dict | None
    headers: dict[str, str]


class Faults:
    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._drops = 0
        self.latency_seconds = 0.0
        self._sleep = sleep

    def fail_next(self, count: int, status: int = 503, body: dict | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """The next `count` requests get `status` (and `body`, default a vendor-neutral one)."""
        with self._lock:
            self._failures.append(_Failure(count, status, body, dict(headers or {})))

    def drop_next(self, count: int) -> None:
        """The next `count` requests see the connection closed with no answer."""
        with self._lock:
            self._drops += count

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._drops = 0
            self.latency_seconds = 0.0

    def intercept(self, request: httpx.Request) -> httpx.Response | None:
        if self.latency_seconds:
            self._sleep(self.latency_seconds)
        with self._lock:
            if self._drops:
                self._drops -= 1
                raise DropConnection("simulated dropped connection", request=request)
            while self._failures and self._failures[0].remaining <= 0:
                self._failures.pop(0)
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.remaining -= 1
        body = failure.body if failure.body is not None else {"error": "simulated failure"}
        return httpx.Response(failure.status, headers=failure.headers, json=body,
                              request=request)
