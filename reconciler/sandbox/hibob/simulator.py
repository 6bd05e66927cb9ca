"""The assembled Hibob simulator: the HTTP entry point (faults, lock, request log), the WAF
block, the Basic auth check, routing to the People, named-list and field endpoints, and the
rate-limit headers on every answer.

`HibobSimulator` combines the resource mixins; the answers themselves live in their resource's
module.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TypeAlias

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.faults import DropConnection, SimulatedTimeout
from reconciler.sandbox.hibob.limits import LimitsMixin
from reconciler.sandbox.hibob.metadata import MetadataMixin
from reconciler.sandbox.hibob.people import PeopleMixin, _Rejected
from reconciler.sandbox.hibob.webhooks import WebhooksMixin

_WRONG_PATH_PAGE = b"<!DOCTYPE html><html><head><title>Bob</title></head><body></body></html>"

Endpoint: TypeAlias = Callable[[httpx.Request], Json | list[Json] | None]
"""An endpoint's answer: the 200 body, or None for a 404 without a body."""


class HibobSimulator(PeopleMixin, MetadataMixin, LimitsMixin, WebhooksMixin):
    # ---- HTTP ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.faults.intercept(request)
        except (DropConnection, SimulatedTimeout):
            self.requests.append((request.method, request.url.path, 0))
            raise
        if response is None:
            with self._lock:
                response = self._answer(request)
        self.requests.append((request.method, request.url.path, response.status_code))
        self.faults.after_apply(request, response)
        return response

    def _answer(self, request: httpx.Request) -> httpx.Response:
        now = self._clock()
        auth = request.headers.get("authorization", "")
        if self.waf_enabled and self._blocked_until.get(auth, 0.0) > now:
            return httpx.Response(
                403,
                content=b"<html><body>Request blocked</body></html>",
                headers={"Content-Type": "text/html"},
            )
        bucket, handler = self._route(request)
        if not hmac.compare_digest(auth.encode(), self._auth.encode()):
            self._count_auth_failure(auth, now)
            # Empty body, as observed live; the rate-limit headers come even on a 401.
            return httpx.Response(401, headers=self._quota(bucket, now, take=False)[1])
        if handler is None:
            # A wrong path answers 200 with an HTML page: callers must check Content-Type.
            return httpx.Response(
                200, content=_WRONG_PATH_PAGE, headers={"Content-Type": "text/html; charset=UTF-8"}
            )
        allowed, headers = self._quota(bucket, now, take=True)
        if not allowed:
            return _error(429, "TooManyRequests", "Rate limit exceeded", headers)
        try:
            payload = handler(request)
        except _Rejected as e:
            return _error(e.status, e.key, e.message, headers)
        if payload is None:
            return httpx.Response(404, headers=headers)
        return httpx.Response(200, json=payload, headers=headers)

    def _route(self, request: httpx.Request) -> tuple[str, Endpoint | None]:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/v1/people/search":
            return "search", self._search
        if method == "POST" and path.startswith("/v1/people/") and path.count("/") == 3:
            return "read", lambda r: self._read_one(r, path.rsplit("/", 1)[1])
        if method == "GET" and path.startswith("/v1/company/named-lists/") and path.count("/") == 4:
            return "lists", lambda r: self._named_list(r, path.rsplit("/", 1)[1])
        if method == "GET" and path == "/v1/company/people/fields":
            # Sim decision: field metadata and named lists are both "metadata" endpoints at
            # 50/min (api/hibob.md 3.2, 3.3); whether they share one quota is undocumented, so
            # they do here (the less convenient reading).
            return "lists", self._field_metadata
        return "other", None


def _error(status: int, key: str, message: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(status, json={"key": key, "error": message}, headers=headers)
