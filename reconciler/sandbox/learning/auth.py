"""The 360Learning simulator's OAuth token endpoint, bearer-token check and per-company rate
limits (api/360learning.md 1.2, 1.4), with the token-expiry and 429-burst knobs.

Mixed into `LearningSimulator`; `_guard` calls `_authenticate` and `_admit` before any handler.
"""

from __future__ import annotations

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import _json_body, _Refusal
from reconciler.sandbox.learning.state import REAL_LIFETIME, LearningState

_TOKEN_FIELDS = frozenset({"grant_type", "client_id", "client_secret", "user_id", "company_id"})


class AuthMixin(LearningState):
    def expire_tokens(self) -> None:
        """Every token issued so far is now unknown (as if expired or revoked)."""
        with self._lock:
            self._tokens.clear()

    def burst_429(self, count: int) -> None:
        """The next `count` requests get the documented 429 (no Retry-After header)."""
        self.faults.fail_next(count, 429, {"error": "tooManyRequests"})

    def _authenticate(self, request: httpx.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires_at = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires_at is None or self._clock() >= expires_at:
            raise _Refusal(401, "invalid_token", flat=True)

    def _admit(self, method: str) -> None:
        # Limits are per company over any 1-second window [docs, "copy-of" rate-limit page];
        # the token call is excluded (it is not a Core resource). Refused calls do not count.
        if not self.enforce_rate_limits:
            return
        kind = "read" if method == "GET" else "write"
        limit = self.read_limit_per_second if kind == "read" else self.write_limit_per_second
        hits, now = self._hits[kind], self._clock()
        while hits and now - hits[0] >= 1.0:
            hits.popleft()
        if len(hits) >= limit:
            self.rate_limited_count += 1
            raise _Refusal(429, "tooManyRequests", flat=True)
        hits.append(now)

    # ---- token -------------------------------------------------------------------------------

    def _create_token(self, request: httpx.Request) -> httpx.Response:
        bad = _Refusal(400, "invalid_request", flat=True)
        body = _json_body(request, bad)
        if (
            not isinstance(body, dict)
            or set(body) - _TOKEN_FIELDS
            or not {"grant_type", "client_id", "client_secret"} <= set(body)
            or not all(isinstance(value, str) for value in body.values())
        ):
            raise bad
        if body["grant_type"] != "client_credentials":
            raise _Refusal(400, "unsupported_grant_type", flat=True)
        if (body["client_id"], body["client_secret"]) != (self.client_id, self.client_secret):
            raise _Refusal(401, "invalid_client", flat=True)
        if "user_id" in body and self._users.get(body["user_id"], {}).get("status") in (
            None,
            "deleted",
        ):
            raise _Refusal(400, "non_existing_user", flat=True)
        token = f"sandbox-token-{self._next_id('f')}"
        self._tokens[token] = self._clock() + self.token_lifetime_seconds
        lifetime = self.token_lifetime_seconds
        answer: Json = {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": str(lifetime) if self.expires_in_as_string else lifetime,
        }
        if self.advertised_expires_in is not REAL_LIFETIME:
            answer["expires_in"] = self.advertised_expires_in
        if not _is_json(answer["expires_in"]):
            del answer["expires_in"]
        return httpx.Response(200, json=answer)


def _is_json(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)
