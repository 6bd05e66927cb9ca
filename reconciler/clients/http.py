"""The HTTP shell both API clients share: client construction, throttling, retries, error mapping.

`HibobClient` and `LearningClient` send every request through `ApiSession.send`, which turns
httpx exceptions and error statuses into `reconciler.errors` (httpx never escapes this module).
Every attempt has an overall deadline, however slowly the bytes arrive. It must not know vendor
endpoints, and its error messages never carry secrets or headers: any text from outside goes
through `redact` and is capped before it becomes part of an error.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random as random_module
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from reconciler.errors import (
    ApiAuthFailed,
    ApiError,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
)
from reconciler.redact import redact

MAX_OUTSIDE_CHARS = 300
"""Upstream error text kept in an error: one readable line, never a whole echoed request."""

RequestFactory = Callable[[], httpx.Request]

_deadline = threading.local()
"""The monotonic time the attempt in progress on this thread must end by (None: no limit)."""

log = logging.getLogger(__name__)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the thread's deadline.

    httpx applies its timeout to each read, so a server sending one byte per second keeps a
    request alive forever; bounding each socket call by the time left ends it on time.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with the streams it opens bounded by `_DeadlineStream`."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the overall deadline of the request passed")
    return remaining if timeout is None else min(timeout, remaining)


def _install_deadlines(client: httpx.Client) -> None:
    """Bound the sockets of the client's own transports (env proxies included).

    httpx offers no public seam for httpcore's network backend, so its pools are reached
    through their attributes; a transport of another shape (a test's MockTransport) has no
    sockets, and `ApiSession` still checks the deadline between the chunks of a body.
    """
    transports = [client._transport, *client._mounts.values()]  # noqa: SLF001
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(
            backend, _DeadlineBackend
        ):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]  # noqa: SLF001


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


def build_http_client(
    base_url: str,
    *,
    timeout_seconds: float,
    transport: httpx.BaseTransport | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An httpx.Client for one service; `transport` is the seam tests use for the simulators.

    `timeout_seconds` bounds each socket operation and, through `ApiSession`, each attempt as a
    whole (connect, send, headers and body)."""
    client = httpx.Client(
        base_url=base_url,
        timeout=timeout_seconds,
        transport=transport,
        auth=auth,
        headers=dict(headers or {}),
        follow_redirects=False,
    )
    if transport is None:
        _install_deadlines(client)
    return client


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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures (5xx, transport errors, 429)."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    rate_limited_base_seconds: float = 1.0
    """360Learning's 429 carries no hint; its docs say to wait about 1 s, then back off."""
    max_hinted_wait_seconds: float = 60.0
    """Upper bound on a wait asked for by Retry-After or X-RateLimit-Reset."""

    def backoff_seconds(self, attempt: int, base: float, random: Callable[[], float]) -> float:
        """Capped exponential backoff with full jitter; `attempt` counts from 1."""
        return float(random() * min(self.cap_seconds, base * 2 ** (attempt - 1)))


class ApiStats:
    """Thread-safe counters for one service, read by the metrics endpoint."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._counts = {"calls": 0, "retries": 0, "rate_limited": 0, "errors": 0}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def calls(self) -> int:
        return self.snapshot()["calls"]

    @property
    def retries(self) -> int:
        return self.snapshot()["retries"]

    @property
    def rate_limited(self) -> int:
        return self.snapshot()["rate_limited"]

    @property
    def errors(self) -> int:
        return self.snapshot()["errors"]


@dataclass(frozen=True)
class AuthHints:
    """What to tell the operator on 401/403 (setting names only, never values)."""

    unauthorized: str
    forbidden: str


class ApiSession:
    """Sends requests for one service with throttling, retries and error mapping."""

    def __init__(
        self,
        client: httpx.Client,
        service: str,
        *,
        auth_hints: AuthHints,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random_module.random,
        deadline_seconds: float | None = None,
        deadline_setting: str = "timeout_seconds",
        max_response_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.service = service
        timeout = client.timeout
        phases = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
        self.deadline_seconds = deadline_seconds or max(phases, default=None)
        """How long one attempt may take in all, from connecting to the body's last byte."""
        self._deadline_setting = deadline_setting
        self.max_response_bytes = max_response_bytes
        """The most bytes one answer may hold (decoded); past it, reading stops (None: no cap)."""
        self.stats = ApiStats(service)
        self._auth_hints = auth_hints
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._random = random

    def send(
        self,
        request_factory: RequestFactory,
        *,
        limiter: RateLimiter | None = None,
        allow_404: bool = False,
        forbidden_hint: str | None = None,
        validate_json: bool = True,
        max_bytes: int | None = None,
        final_codes: frozenset[str] = frozenset(),
    ) -> httpx.Response:
        """Send a fresh request from `request_factory` until it succeeds or must stop.

        Returns the 2xx response (or the 404 when `allow_404`); raises an ApiError otherwise.
        `validate_json=False` leaves parsing the body (and reporting invalid JSON) to the
        caller, so a large answer is parsed once. `max_bytes` overrides the session's cap on
        the size of the answer (`responseTooLarge`, never retried: the next try is as big).
        A 429 or 5xx whose vendor code is in `final_codes` is a final answer: not retried, not
        counted as rate limiting, the pacer untouched (e.g. a bulk concurrency limit).
        """
        cap = max_bytes if max_bytes is not None else self.max_response_bytes
        try:
            return self._send(
                request_factory, limiter, allow_404, forbidden_hint, validate_json, cap, final_codes
            )
        except ApiError:
            self.stats.add("errors")
            raise

    def _send(
        self,
        request_factory: RequestFactory,
        limiter: RateLimiter | None,
        allow_404: bool,
        forbidden_hint: str | None,
        validate_json: bool = True,
        cap: int | None = None,
        final_codes: frozenset[str] = frozenset(),
    ) -> httpx.Response:
        policy = self._policy
        for attempt in range(1, policy.max_attempts + 1):
            if limiter is not None:
                limiter.acquire()
            self.stats.add("calls")
            failure, wait_seconds = self._attempt(request_factory, attempt, cap, final_codes)
            if isinstance(limiter, AdaptiveLimiter):
                if isinstance(failure, ApiRateLimited):
                    limiter.record_rate_limited()
                elif isinstance(failure, httpx.Response) and failure.status_code < 400:
                    limiter.record_success()
            if isinstance(failure, httpx.Response):
                return self._accept(failure, allow_404, forbidden_hint, validate_json)
            if attempt == policy.max_attempts:
                raise failure
            self.stats.add("retries")
            self._sleep(wait_seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        request_factory: RequestFactory,
        attempt: int,
        cap: int | None = None,
        final_codes: frozenset[str] = frozenset(),
    ) -> tuple[httpx.Response | ApiError, float]:
        """One try: the response to hand on, or a retryable error and how long to wait."""
        policy = self._policy
        request = request_factory()
        limit = self.deadline_seconds
        deadline = None if limit is None else time.monotonic() + limit
        try:
            with _overall_deadline(deadline):
                response = self.client.send(request, stream=True)
                try:
                    self._read_body(response, deadline, cap)
                finally:
                    response.close()
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ApiUnavailable(
                self.service, None, None, redact(f"bad URL ({exc})", MAX_OUTSIDE_CHARS)
            ) from None
        except httpx.TransportError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                detail = self._deadline_detail(request)
            else:
                detail = self._transport_detail(request, exc)
            error: ApiError = ApiUnavailable(self.service, None, None, detail)
            wait = policy.backoff_seconds(attempt, policy.base_seconds, self._random)
            if attempt < policy.max_attempts:  # no silence while a dead host is retried
                log.warning(
                    "%s API: %s; retrying in %.0f s (try %d of %d)",
                    self.service,
                    detail,
                    wait,
                    attempt,
                    policy.max_attempts,
                    extra={"service": self.service, "attempt": attempt},
                )
            return error, wait
        except httpx.HTTPError as exc:
            raise ApiUnavailable(self.service, None, None, _describe_transport_error(exc)) from None
        status = response.status_code
        if final_codes and (status == 429 or status >= 500):
            if parse_error_body(response)[0] in final_codes:
                return response, 0.0
        if status == 429:
            self.stats.add("rate_limited")
            hint = self._hinted_wait(response, use_reset=True)
            error = ApiRateLimited(self.service, hint, "rate limited; retries exhausted")
            if hint is not None:
                return error, hint
            base = policy.rate_limited_base_seconds
            return error, max(base, policy.backoff_seconds(attempt, base, self._random))
        if status >= 500:
            code, message = parse_error_body(response)
            error = ApiUnavailable(self.service, status, code, message or "server error")
            hint = self._hinted_wait(response, use_reset=False)
            if hint is not None:
                return error, hint
            return error, policy.backoff_seconds(attempt, policy.base_seconds, self._random)
        return response, 0.0

    def _read_body(self, response: httpx.Response, deadline: float | None, cap: int | None) -> None:
        """Read the body in chunks, each socket read bounded by the deadline (and checked
        between chunks, for transports without sockets), and stop past `cap` bytes (counted
        decoded, so a compressed answer cannot expand past it either)."""
        declared = _parse_float(response.headers.get("content-length"))
        if cap is not None and declared is not None and declared > cap:
            raise self._too_large(response, cap)
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if cap is not None and size > cap:
                raise self._too_large(response, cap)
            if deadline is not None and time.monotonic() >= deadline:
                raise httpx.ReadTimeout("overall deadline passed", request=response.request)
        # What `Response.read()` does, with the chunks already in hand.
        response._content = b"".join(chunks)  # noqa: SLF001

    def _too_large(self, response: httpx.Response, cap: int) -> ApiUnavailable:
        request = response.request
        return ApiUnavailable(
            self.service,
            response.status_code,
            "responseTooLarge",
            f"the answer to {request.method} {request.url.path} is larger than the "
            f"{cap / 2**20:.1f} MB cap; stopped reading it",
        )

    def _transport_detail(self, request: httpx.Request, exc: Exception) -> str:
        """What failed, where (the origin, never the path's query), and which setting says
        where: `ConnectError: … refused at http://host:port (hibob.base_url)`."""
        url = request.url
        origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
        section = self._deadline_setting.rpartition(".")[0]
        setting = f"{section}.base_url" if section else "base_url"
        return f"{_describe_transport_error(exc)} at {origin} ({setting})"

    def _deadline_detail(self, request: httpx.Request) -> str:
        return (
            f"no complete answer to {request.method} {request.url.path} within "
            f"{self.deadline_seconds:g} s ({self._deadline_setting})"
        )

    def _accept(
        self,
        response: httpx.Response,
        allow_404: bool,
        forbidden_hint: str | None,
        validate_json: bool = True,
    ) -> httpx.Response:
        status = response.status_code
        if status < 300:
            _check_json(response, self.service, parse=validate_json)
            return response
        if status == 404 and allow_404:
            return response
        code, message = parse_error_body(response)
        if status == 401:
            raise ApiAuthFailed(
                self.service, status, code, _join(self._auth_hints.unauthorized, message)
            )
        if status == 403:
            hint = forbidden_hint or self._auth_hints.forbidden
            raise ApiAuthFailed(self.service, status, code, _join(hint, message))
        detail = _join(message, f"{response.request.method} {response.request.url.path}")
        if status >= 500:  # a final 5xx (`final_codes`): the service is unavailable for this
            raise ApiUnavailable(self.service, status, code, detail)
        raise ApiRejected(self.service, status, code, detail)

    def _hinted_wait(self, response: httpx.Response, *, use_reset: bool) -> float | None:
        """Seconds the server asked us to wait (Retry-After, or Hibob's X-RateLimit-Reset)."""
        wait = _parse_retry_after(response.headers.get("retry-after"), self._wall_clock)
        if wait is None and use_reset:
            reset = _parse_float(response.headers.get("x-ratelimit-reset"))
            if reset is not None:
                wait = reset - self._wall_clock()
        if wait is None:
            return None
        return min(max(wait, 0.0), self._policy.max_hinted_wait_seconds)


@contextmanager
def _overall_deadline(at: float | None) -> Iterator[None]:
    """This thread's deadline for the sockets of one attempt, cleared after it."""
    _deadline.at = at
    try:
        yield
    finally:
        _deadline.at = None


def parse_error_body(response: httpx.Response) -> tuple[str | None, str]:
    """(vendor code, message) from any of the vendors' error shapes; ('', '') when unknown.

    360Learning: {"error": {"code", "message"}} or flat {"error": "code"}.
    Hibob: {"key", "error"} or {"errorMessage"}.
    """
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    if isinstance(error, dict):
        return _text(error.get("code")), _text(error.get("message")) or ""
    if "key" in body:
        return _text(body.get("key")), _text(error) or ""
    if isinstance(error, str):
        return _text(error), _text(body.get("message")) or ""
    return None, _text(body.get("errorMessage")) or ""


def _check_json(response: httpx.Response, service: str, *, parse: bool = True) -> None:
    if not response.content:
        return
    content_type = response.headers.get("content-type", "")
    # Hibob answers a wrong path with 200 text/html: a base URL problem, not data.
    if content_type and "json" not in content_type.lower():
        raise ApiRejected(
            service,
            response.status_code,
            "unexpectedContentType",
            f"expected JSON but got {_text(content_type.split(';')[0], 60)} from "
            f"{response.request.url.path}; check the base URL",
        )
    if not parse:
        return
    try:
        response.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiUnavailable(
            service,
            response.status_code,
            "invalidJson",
            f"response from {response.request.url.path} is not valid JSON",
        ) from None


def _parse_retry_after(raw: str | None, wall_clock: Callable[[], float]) -> float | None:
    if not raw:
        return None
    seconds = _parse_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - wall_clock()


def _parse_float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _describe_transport_error(exc: Exception) -> str:
    # str(exc) names the failure (timeout, reset, refused); httpx never puts headers in it, but a
    # proxy's reason phrase may echo anything.
    text = " ".join(str(exc).split()) or "no detail"
    return redact(f"{type(exc).__name__}: {text}", 200)


def _text(value: Any, max_chars: int = MAX_OUTSIDE_CHARS) -> str | None:
    """Text from an upstream body: one line (the CLI prints errors as one), redacted, capped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    # Redacted before whitespace is folded, which could change a secret's spelling.
    return " ".join(redact(text).split())[:max_chars]


def _join(*parts: str | None) -> str:
    return "; ".join(part for part in parts if part)
