"""The 360Learning API v2 connection every LearningClient call goes through.

`LearningApi` owns the OAuth client-credentials token (fetched lazily, cached, refreshed once on
401), the read/write throttles, the calls and the paging (which refuses a cursor that loops or a
link to another host); with the parsing of users and the paths. `LearningUsers` and
`LearningGroups` build on it. It must not decide what to change.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.clients.http import ApiSession, ApiStats, AuthHints
from reconciler.clients.pacer import AdaptiveLimiter, RateLimiter
from reconciler.clients.transport import build_http_client
from reconciler.core.models import LearningUser
from reconciler.errors import ApiAuthFailed, ApiRejected, ApiUnavailable
from reconciler.redact import remember_secrets, remember_token
from reconciler.settings_sections import LearningSettings

SERVICE = "360Learning"
TOKEN_PATH = "/api/v2/oauth2/token"
REFRESH_MARGIN_SECONDS = 60.0
SHORT_TOKEN_LIFETIME_SECONDS = 60.0
"""The lifetime of a token whose `expires_in` is zero or less, missing or not a number."""
MAX_ANSWER_BYTES = 32 * 2**20
"""One answer is one page: at most 500 users or 5,000 external ids, about 1 MB even with long
custom fields. 32x that is kept; past it the page is refused (`responseTooLarge`)."""
PAGE_CAP_SLACK = 2
"""Pages a listing may take beyond what its distinct items fill (a last, short page)."""
MAX_PAGES = 20_000
"""Whatever the items: 10 million users at 500 a page; past it a listing is a loop."""
_NO_BODY = object()
_AUTH_HINTS = AuthHints(
    unauthorized="check learning.client_id and learning.client_secret (credential revoked?)",
    forbidden="the API credential lacks a scope",
)


class LearningApi:
    """The 360Learning connection: its OAuth token, throttles, calls and paging."""

    def __init__(
        self,
        settings: LearningSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        remember_secrets(settings.client_id, settings.client_secret.get_secret_value())
        client = build_http_client(
            settings.base_url,
            timeout_seconds=settings.timeout_seconds,
            transport=transport,
            headers={"360-api-version": "v2.0", "accept": "application/json"},
        )
        self._session = ApiSession(
            client,
            SERVICE,
            auth_hints=_AUTH_HINTS,
            sleep=sleep,
            wall_clock=wall_clock,
            deadline_setting="learning.timeout_seconds",
            max_response_bytes=MAX_ANSWER_BYTES,
        )
        self._reads = RateLimiter(settings.max_reads_per_second, clock=clock, sleep=sleep)
        # The write budget is the company's, shared with any other integration: follow what
        # the server allows (AIMD) up to the configured ceiling.
        self._writes = AdaptiveLimiter(settings.max_writes_per_second, clock=clock, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self.is_bulk_granted: bool | None = None
        """Whether the credential may use bulk memberships; None until first tried."""
        self._is_bulk_read_checked = False
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._platform_group_id: str | None = None

    @property
    def stats(self) -> ApiStats:
        return self._session.stats

    def close(self) -> None:
        self._session.client.close()

    # Plumbing

    def _iter_users(self, filters: list[tuple[str, str]]) -> Iterator[LearningUser]:
        path = "/api/v2/users" + ("?" + _query(filters) if filters else "")
        for raw in self._paginate(path, "users:read"):
            yield _parse_user(raw)

    def _paginate(self, url: str, scope: str) -> Iterator[Any]:
        """Every item of a listing, page after page, until a page has no `next` link.

        A server whose cursor never advances would keep this loop going forever, so paging
        stops with an error on a link already visited, and past a page cap derived from the
        population the listing itself shows: a real cursor brings new items on every page.
        """
        next_url: str | None = url
        visited: set[str] = set()
        population: set[Any] = set()
        pages = largest_page = 0
        while next_url:
            response = self._call("GET", next_url, scope)
            visited.add(str(response.request.url))
            items = response.json()
            if not isinstance(items, list):
                raise ApiRejected(
                    SERVICE,
                    response.status_code,
                    "unexpectedResponse",
                    f"expected a list from {response.request.url.path}",
                )
            pages += 1
            largest_page = max(largest_page, len(items))
            population.update(_item_key(item) for item in items)
            yield from items
            next_url = self._next_link(response)
            if next_url is None:
                return
            endpoint = f"GET {response.request.url.path}"
            if str(response.request.url.join(next_url)) in visited:
                raise _paging_error(
                    endpoint, f"page {pages} links back to a page already read", response
                )
            if pages >= min(MAX_PAGES, page_cap(len(population), largest_page)):
                raise _paging_error(
                    endpoint,
                    f"{pages} pages held only {len(population)} distinct items",
                    response,
                )

    def _next_link(self, response: httpx.Response) -> str | None:
        return self._same_host_path(response, response.links.get("next", {}).get("url"))

    def _same_host_path(self, response: httpx.Response, link: str | None) -> str | None:
        """`link` when it points at the configured host (it will carry the token), else None
        when absent; raises when it points elsewhere."""
        if not link:
            return None
        try:
            target = httpx.URL(link)
        except httpx.InvalidURL:
            raise ApiRejected(
                SERVICE,
                response.status_code,
                "invalidNextLink",
                "pagination link is not a valid URL",
            ) from None
        base = self._session.client.base_url
        # The bearer token goes with the request: never follow a link to another host.
        if target.is_absolute_url and (target.scheme, target.host, target.port) != (
            base.scheme,
            base.host,
            base.port,
        ):
            raise ApiRejected(
                SERVICE,
                response.status_code,
                "foreignNextLink",
                f"a returned link points to another host ({target.host})",
            )
        return link

    def _call(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        body: Any = _NO_BODY,
        allow_404: bool = False,
        final_codes: frozenset[str] = frozenset(),
    ) -> httpx.Response:
        """One API call with the cached token; on 401 the token is renewed once and re-sent."""
        limiter = self._reads if method == "GET" else self._writes
        hint = f"the API credential lacks the {scope} scope (Settings > API v2)"
        for attempt in (1, 2):
            token = self._current_token()
            try:
                return self._session.send(
                    partial(self._build, method, url, body, token),
                    limiter=limiter,
                    allow_404=allow_404,
                    forbidden_hint=hint,
                    final_codes=final_codes,
                )
            except ApiAuthFailed as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self._drop_token(token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _build(self, method: str, url: str, body: Any, token: str) -> httpx.Request:
        headers = {"authorization": f"Bearer {token}"}
        if body is _NO_BODY:
            return self._session.client.build_request(method, url, headers=headers)
        return self._session.client.build_request(method, url, json=body, headers=headers)

    def _current_token(self) -> str:
        # Held while fetching, so concurrent callers wait for one token instead of each asking.
        with self._token_lock:
            if self._token is None or self._clock() >= self._token_expires_at:
                self._token, lifetime = self._fetch_token()
                margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
                self._token_expires_at = self._clock() + lifetime - margin
            return self._token

    def _drop_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret.get_secret_value(),
        }
        response = self._session.send(
            lambda: self._session.client.build_request("POST", TOKEN_PATH, json=body),
            limiter=self._writes,
        )
        payload = response.json()
        token = payload.get("access_token") if isinstance(payload, dict) else None
        lifetime = _token_lifetime(payload.get("expires_in") if isinstance(payload, dict) else None)
        if not isinstance(token, str) or not token:
            raise ApiRejected(
                SERVICE,
                response.status_code,
                "invalidTokenResponse",
                "token response had no access_token",
            )
        remember_token(token)
        return token, lifetime


def page_cap(population: int, largest_page: int) -> int:
    """Pure: the most pages a listing of `population` distinct items, `largest_page` a page,
    can honestly take (every page but the last is full of new items), plus some slack."""
    return -(-population // max(1, largest_page)) + PAGE_CAP_SLACK


def _item_key(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("_id") or json.dumps(item, sort_keys=True, default=str)
    return item if isinstance(item, str | int) else json.dumps(item, default=str)


def _paging_error(endpoint: str, why: str, response: httpx.Response) -> ApiUnavailable:
    return ApiUnavailable(
        SERVICE, response.status_code, "pagingLoop", f"{endpoint}: {why}; stopped paging"
    )


def _token_lifetime(expires_in: Any) -> float:
    """Seconds a token lives: `expires_in` (the docs send "3600", the spec a number), or a short
    fixed lifetime when it is zero or less, missing or not a finite number - never "fetch a
    token per call", nor "keep it forever" (a 401 would still renew it once)."""
    try:
        lifetime = float(expires_in) if not isinstance(expires_in, bool) else math.nan
    except (TypeError, ValueError):
        return SHORT_TOKEN_LIFETIME_SECONDS
    if not math.isfinite(lifetime) or lifetime <= 0:
        return SHORT_TOKEN_LIFETIME_SECONDS
    return lifetime


def _parse_user(raw: Any) -> LearningUser:
    if not isinstance(raw, dict) or "_id" not in raw:
        raise ApiRejected(SERVICE, 200, "unexpectedResponse", "user object without _id")
    attributes = {key: value for key, value in raw.items() if key not in ("_id", "status")}
    return LearningUser(
        learning_user_id=str(raw["_id"]), status=_status_of(raw), attributes=attributes
    )


def _status_of(raw: dict[str, Any]) -> str:
    """`status`; without one, the docs' own example's `"deleted": true` (case 8). Anything else
    is kept as given ("" when absent), which the core treats as unknown and never writes for."""
    status = raw.get("status")
    if status is None and raw.get("deleted") is True:
        return "deleted"
    return status if isinstance(status, str) else ""


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    # Built by hand: the filter brackets (mail[eq]) stay raw, only the values are escaped.
    return "&".join(f"{key}={quote(str(value), safe='')}" for key, value in pairs)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _user_path(learning_user_id: str) -> str:
    return f"/api/v2/users/{_segment(learning_user_id)}"
