"""The session both API clients send through: retries, backoff, counters and error mapping.

`HibobClient` and `LearningClient` send every request through `ApiSession.send`, which turns
httpx exceptions and error statuses into `reconciler.errors` (httpx never escapes this module).
Every attempt has an overall deadline, however slowly the bytes arrive. It must not know vendor
endpoints, and its error messages never carry secrets or headers: any text from outside goes
through `redact` and is capped before it becomes part of an error. Building the client and
bounding its sockets is `transport`'s, pacing `pacer`'s, reading answers `http_errors`'s.
"""

from __future__ import annotations

import logging
import random as random_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from reconciler.clients.http_errors import (
    MAX_OUTSIDE_CHARS,
    _check_json,
    _describe_transport_error,
    _join,
    _parse_float,
    _parse_retry_after,
    parse_error_body,
)
from reconciler.clients.pacer import AdaptiveLimiter, RateLimiter
from reconciler.clients.transport import _overall_deadline
from reconciler.errors import (
    ApiAuthFailed,
    ApiError,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
)
from reconciler.redact import redact

RequestFactory = Callable[[], httpx.Request]

log = logging.getLogger(__name__)


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
