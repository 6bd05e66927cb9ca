"""Fault knobs shared by both simulators: fail, throttle, slow down, time out or drop requests.

Each simulator owns one `Faults`, calls `Faults.intercept(request)` first in `handle` (a non-None
answer replaces the normal response) and `Faults.after_apply(request)` once it has applied the
request (which may drop the answer of a write the server already made); `Faults.reshape` bends
an answer as a misbehaving server would (a `Link` pointing back at its own page). Dropped
connections and timeouts raise `httpx` transport errors, which `httpx.MockTransport` passes to
the client and the loopback server turns into a closed socket. Knobs can be limited to one
method and path prefix. `injected` counts the faults that fired. Thread-safe: served simulators
use several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from reconciler.sandbox.documents import Json


class DropConnection(httpx.RemoteProtocolError):
    """Raised by a simulator to model a connection closed without an answer."""


class SimulatedTimeout(httpx.ReadTimeout):
    """Raised by a simulator to model an answer that never comes in time.

    Through `httpx.MockTransport` the client sees a read timeout at once; the loopback server
    holds the socket for `hold_seconds`, then closes it without an answer.
    """

    def __init__(self, message: str, *, request: httpx.Request, hold_seconds: float = 0.0):
        super().__init__(message, request=request)
        self.hold_seconds = hold_seconds


@dataclass
class _Rule:
    remaining: int
    method: str | None = None
    path_prefix: str | None = None
    status: int = 503
    body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, request: httpx.Request) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or request.method == self.method)
            and (self.path_prefix is None or request.url.path.startswith(self.path_prefix))
        )


@dataclass
class _Trigger:
    remaining: int
    """Requests left until `callback` runs."""
    callback: Callable[[], None]


class Faults:
    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Rule] = []
        self._drops: list[_Rule] = []
        self._timeouts: list[_Rule] = []
        self._lost_answers: list[_Rule] = []
        self._link_loops: list[_Rule] = []
        self._triggers: list[_Trigger] = []
        self.latency_seconds = 0.0
        self.timeout_hold_seconds = 0.0
        self.injected = 0
        self._sleep = sleep

    # -- knobs ------------------------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        status: int = 503,
        body: Json | None = None,
        headers: dict[str, str] | None = None,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """The next `count` (matching) requests get `status` (and `body`, default a neutral one)."""
        with self._lock:
            self._failures.append(
                _Rule(count, method, path_prefix, status, body, dict(headers or {}))
            )

    def drop_next(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """The next `count` (matching) requests see the connection closed, nothing applied."""
        with self._lock:
            self._drops.append(_Rule(count, method, path_prefix))

    def timeout_next(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """The next `count` (matching) requests time out before the server applies them."""
        with self._lock:
            self._timeouts.append(_Rule(count, method, path_prefix))

    def drop_after_apply_next(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """The next `count` (matching) requests are applied, then the answer is lost (the
        connection drops): the client cannot know the write happened."""
        with self._lock:
            self._lost_answers.append(_Rule(count, method, path_prefix))

    def loop_next_links(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """The next `count` (matching) answers that carry a `Link: rel="next"` point it back at
        the page just served, as a server whose cursor never advances would."""
        with self._lock:
            self._link_loops.append(_Rule(count, method, path_prefix))

    def on_request(self, count: int, callback: Callable[[], None]) -> None:
        """Call `callback` when the `count`-th request from now arrives (before it is handled),
        e.g. `learning.expire_tokens` to expire the token in the middle of a pass."""
        with self._lock:
            self._triggers.append(_Trigger(count, callback))

    def clear(self) -> None:
        with self._lock:
            for rules in (
                self._failures,
                self._drops,
                self._timeouts,
                self._lost_answers,
                self._link_loops,
                self._triggers,
            ):
                rules.clear()
            self.latency_seconds = 0.0

    # -- called by the simulators -----------------------------------------------------------
    def intercept(self, request: httpx.Request) -> httpx.Response | None:
        if self.latency_seconds:
            self._sleep(self.latency_seconds)
        due = self._due_triggers()
        for callback in due:
            callback()
        with self._lock:
            if _take(self._drops, request):
                self.injected += 1
                raise DropConnection("simulated dropped connection", request=request)
            if _take(self._timeouts, request):
                self.injected += 1
                raise SimulatedTimeout(
                    "simulated timeout", request=request, hold_seconds=self.timeout_hold_seconds
                )
            failure = _take(self._failures, request)
            if failure is None:
                return None
            self.injected += 1
        body = failure.body if failure.body is not None else {"error": "simulated failure"}
        return httpx.Response(failure.status, headers=failure.headers, json=body, request=request)

    def after_apply(self, request: httpx.Request, response: httpx.Response) -> None:
        """Raise DropConnection when the answer to this applied request is to be lost."""
        if response.status_code >= 400:
            return  # nothing was applied: a lost refusal is an ordinary dropped connection
        with self._lock:
            if not _take(self._lost_answers, request):
                return
            self.injected += 1
        raise DropConnection(
            "simulated dropped connection after the write was applied", request=request
        )

    def reshape(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """The answer as a misbehaving server would send it (a looping `Link` header)."""
        if "link" not in response.headers:
            return response
        with self._lock:
            if not _take(self._link_loops, request):
                return response
            self.injected += 1
        response.headers["Link"] = f'<{request.url}>; rel="next"'
        return response

    def _due_triggers(self) -> list[Callable[[], None]]:
        if not self._triggers:
            return []
        with self._lock:
            due = []
            for trigger in self._triggers:
                trigger.remaining -= 1
                if trigger.remaining <= 0:
                    due.append(trigger.callback)
            self._triggers = [t for t in self._triggers if t.remaining > 0]
            self.injected += len(due)
        return due


def _take(rules: list[_Rule], request: httpx.Request) -> _Rule | None:
    """The first rule matching `request`, with one use consumed; spent rules are dropped."""
    for rule in rules:
        if rule.matches(request):
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None
