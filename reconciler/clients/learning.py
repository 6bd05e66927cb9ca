"""LearningClient: 360Learning API v2 users, managers, group roles (bulk too), external ids.

Called by the reconcile pass (reads) and by apply (writes, possibly from a small thread pool).
Owns the OAuth client-credentials token (fetched lazily, cached, refreshed once on 401) and the
read/write throttles. It must not decide what to change; it only performs the calls asked of it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.clients.http import ApiSession, ApiStats, AuthHints
from reconciler.clients.pacer import AdaptiveLimiter, RateLimiter
from reconciler.clients.transport import build_http_client
from reconciler.config import LearningSettings
from reconciler.core.models import GroupRole, LearningUser
from reconciler.errors import ApiAuthFailed, ApiRejected, ApiUnavailable
from reconciler.redact import remember_secrets, remember_token

SERVICE = "360Learning"
TOKEN_PATH = "/api/v2/oauth2/token"
REFRESH_MARGIN_SECONDS = 60.0
SHORT_TOKEN_LIFETIME_SECONDS = 60.0
"""The lifetime of a token whose `expires_in` is zero or less, missing or not a number."""
MAILS_PER_QUERY = 50
MAX_ANSWER_BYTES = 32 * 2**20
"""One answer is one page: at most 500 users or 5,000 external ids, about 1 MB even with long
custom fields. 32x that is kept; past it the page is refused (`responseTooLarge`)."""
PAGE_CAP_SLACK = 2
"""Pages a listing may take beyond what its distinct items fill (a last, short page)."""
MAX_PAGES = 20_000
"""Whatever the items: 10 million users at 500 a page; past it a listing is a loop."""
BULK_MAX_ITEMS = 20_000  # per bulk job [spec]
# Bulk jobs are polled from 1 s, then every 1.5x longer up to 10 s (no documented cadence).
BULK_FIRST_POLL_SECONDS, BULK_LONGEST_POLL_SECONDS = 1.0, 10.0
BULK_QUEUE_SECONDS, BULK_ITEMS_PER_SECOND_FLOOR = 120.0, 10.0
"""A job is followed for 2 minutes in the queue plus its items at the write limit (10/s):
past that, bulk is slower than one call each and something is wrong."""
# A mail that cannot exist: check_access reads with it to test users:read cheaply.
ACCESS_CHECK_MAIL = "access-check@reconciler.invalid"
_NO_BODY = object()
NO_SUCH_USER_ID = "000000000000000000000000"
BULK_MEMBERSHIPS_PATH = "/api/v2/bulk/groups/memberships"
BULK_OPERATIONS_PATH = "/api/v2/bulk/operations"
BULK_REFUSALS = frozenset({"bulkOperationsConcurrencyLimitReached", "bulkAPIDisabled"})
"""429 and 503 codes [bulk spec] meaning the job was not taken: add one by one instead."""
# Write requests with an empty body: invalid for every one of them, so nothing is created.
SCOPE_PROBES = {
    "users:write": ("POST", "/api/v2/users?sendInvitationEmail=false"),
    "externalIds:write": ("POST", "/api/v2/external-ids"),
    "groups:bulk": ("POST", "/api/v2/bulk/groups/memberships"),
}
_AUTH_HINTS = AuthHints(
    unauthorized="check learning.client_id and learning.client_secret (credential revoked?)",
    forbidden="the API credential lacks a scope",
)


class LearningClient:
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

    # Users

    def list_users(
        self, *, status: str | None = None, mails: Sequence[str] | None = None
    ) -> Iterator[LearningUser]:
        """Every user matching the filters, following `Link: rel="next"` pages."""
        base = [("status[eq]", status)] if status else []
        if mails is None:
            yield from self._iter_users(base)
            return
        unique = list(dict.fromkeys(mails))
        for start in range(0, len(unique), MAILS_PER_QUERY):
            chunk = unique[start : start + MAILS_PER_QUERY]
            yield from self._iter_users(base + [("mail[in]", mail) for mail in chunk])

    def list_users_with_deleted(
        self, *, mails: Sequence[str] | None = None
    ) -> Iterator[LearningUser]:
        """Every user matching `mails`, deleted ones too. Whether the default listing includes
        deleted users is undocumented, so they are asked for with `status[eq]=deleted` as
        well (a user both answers return is yielded once)."""
        seen: set[str] = set()
        for status in (None, "deleted"):
            for user in self.list_users(status=status, mails=mails):
                if user.learning_user_id not in seen:
                    seen.add(user.learning_user_id)
                    yield user

    def find_users_by_mail(self, mail: str) -> list[LearningUser]:
        return list(self._iter_users([("mail[eq]", mail)]))

    def get_user(self, learning_user_id: str) -> LearningUser | None:
        response = self._call("GET", _user_path(learning_user_id), "users:read", allow_404=True)
        return None if response.status_code == 404 else _parse_user(response.json())

    def create_user(
        self,
        attributes: Mapping[str, Any],
        *,
        group_id: str,
        role: str,
        send_invitation_email: bool,
    ) -> tuple[LearningUser, bool]:
        """Create an invited user; (user, True) when 360Learning restored a deleted one (200)."""
        body = {key: value for key, value in attributes.items() if value is not None}
        body["membership"] = {"groupId": group_id, "role": role}
        flag = "true" if send_invitation_email else "false"
        response = self._call(
            "POST", f"/api/v2/users?sendInvitationEmail={flag}", "users:write", body=body
        )
        return _parse_user(response.json()), response.status_code == 200

    def update_user(self, learning_user_id: str, changes: Mapping[str, Any]) -> LearningUser:
        """PATCH only `changes`; a None value is sent as null, which clears the attribute."""
        response = self._call(
            "PATCH", _user_path(learning_user_id), "users:write", body=dict(changes)
        )
        return _parse_user(response.json())

    def activate_user(self, learning_user_id: str) -> LearningUser:
        path = _user_path(learning_user_id) + "/activate"
        return _parse_user(self._call("PUT", path, "users:write").json())

    def deactivate_user(self, learning_user_id: str) -> None:
        """Soft delete (status becomes deleted); a later create with the same mail restores it."""
        self._call("DELETE", _user_path(learning_user_id), "users:write")

    # Managers and group roles

    def list_managers(self, learning_user_id: str) -> list[str]:
        path = _user_path(learning_user_id) + "/managers"
        return [str(manager_id) for manager_id in self._paginate(path, "users:read")]

    def list_subordinates(self, learning_user_id: str) -> list[str]:
        path = _user_path(learning_user_id) + "/subordinates"
        return [str(user_id) for user_id in self._paginate(path, "users:read")]

    def add_manager(self, learning_user_id: str, manager_id: str) -> None:
        self._call("POST", _manager_path(learning_user_id, manager_id), "users:write")

    def remove_manager(self, learning_user_id: str, manager_id: str) -> None:
        self._call("DELETE", _manager_path(learning_user_id, manager_id), "users:write")

    def list_user_roles(self, learning_user_id: str) -> list[GroupRole]:
        path = _user_path(learning_user_id) + "/roles"
        return [
            GroupRole(group_id=item["groupId"], role=item["role"])
            for item in self._paginate(path, "users:read")
        ]

    def list_group_roles(self, group_id: str) -> list[tuple[str, str]]:
        """Every membership of one group as (user id, role), 1,000 per page."""
        path = f"/api/v2/groups/{_segment(group_id)}/roles"
        return [
            (str(item["userId"]), str(item["role"])) for item in self._paginate(path, "groups:read")
        ]

    def find_platform_group_id(self) -> str:
        """The platform group (the root, which has no parentId), walking up from the default
        group; cached for the client's life."""
        if self._platform_group_id is None:
            group_id, seen = self._settings.default_group_id, set()
            while group_id not in seen:
                seen.add(group_id)
                group = self.get_group(group_id)
                parent = (group or {}).get("parentId")
                if not parent:
                    break
                group_id = str(parent)
            self._platform_group_id = group_id
        return self._platform_group_id

    def add_group_role(self, group_id: str, role: str, learning_user_id: str) -> None:
        self._call("POST", _role_path(group_id, role, learning_user_id), "groups:write")

    def remove_group_role(self, group_id: str, role: str, learning_user_id: str) -> None:
        self._call("DELETE", _role_path(group_id, role, learning_user_id), "groups:write")

    def may_use_bulk(self) -> bool:
        """Whether bulk jobs may be started: not refused yet, and bulkOperations:read granted
        (tested once, with one page of the operations list): a job nobody can follow would
        leave its memberships unknown, so without it none is started."""
        if self.is_bulk_granted is None and not self._is_bulk_read_checked:
            self._is_bulk_read_checked = True
            if not self.probe_read_scope(BULK_OPERATIONS_PATH, "bulkOperations:read"):
                self.is_bulk_granted = False
        return self.is_bulk_granted is not False

    def probe_read_scope(self, path: str, scope: str) -> bool:
        """True when a read of `path` (one page) is allowed, False on 403; changes nothing."""
        try:
            self._call("GET", path, scope, allow_404=True)
        except ApiAuthFailed as exc:
            if exc.status == 403:
                return False
            raise
        return True

    def start_bulk_memberships(self, chunk: Sequence[Membership]) -> str | None:
        """Queue one bulk job adding `chunk` (scope groups:bulk); the operation's path, or None
        when 360Learning did not take it (no groups:bulk scope, which is remembered, its
        concurrency limit, the bulk API disabled): nothing was written then."""
        body = {
            "input": [
                {"userId": m.learning_user_id, "groupId": m.group_id, "role": m.role} for m in chunk
            ]
        }
        try:
            response = self._call(
                "POST", BULK_MEMBERSHIPS_PATH, "groups:bulk", body=body, final_codes=BULK_REFUSALS
            )
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            self.is_bulk_granted = False
            return None
        except (ApiRejected, ApiUnavailable) as exc:
            if exc.code not in BULK_REFUSALS:
                raise
            # Another integration's jobs or a pause of the bulk API: one call each instead,
            # and no slower pacer (this 429 is no rate limit).
            return None
        operation_url = self._same_host_path(response, response.headers.get("location"))
        if operation_url is None:
            raise ApiRejected(
                SERVICE,
                response.status_code,
                "noOperationLocation",
                "bulk request answered without an operation Location",
            )
        return operation_url

    def follow_bulk_memberships(
        self, operation_url: str, chunk: Sequence[Membership]
    ) -> dict[Membership, str | None]:
        """The error of each membership of an accepted job (None: added). A job that cannot be
        followed (bulkOperations:read revoked) or outlives its deadline is never redone one by
        one: the memberships are read back, and those not there are reported."""
        deadline = _Deadline(bulk_poll_deadline_seconds(len(chunk)), self._clock, self._sleep)
        try:
            operation = self._wait_for_operation(operation_url, deadline)
            if operation is not None:
                results = self._call("GET", operation_url + "/results", "bulkOperations:read")
                return _bulk_outcome(chunk, results.json(), operation)
            why = "did not end within its deadline"
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            why = "could not be followed (bulkOperations:read refused)"
        return self._read_back_memberships(chunk, f"bulk operation {why}", deadline)

    def _wait_for_operation(self, path: str, deadline: _Deadline) -> dict[str, Any] | None:
        """The ended operation, or None once `deadline` has passed."""
        wait = BULK_FIRST_POLL_SECONDS
        while True:
            deadline.sleep(wait)
            operation = self._call("GET", path, "bulkOperations:read").json()
            if not isinstance(operation, dict):
                raise ApiRejected(
                    SERVICE, 200, "unexpectedResponse", "bulk operation is not an object"
                )
            if operation.get("status") in ("completed", "error"):
                return operation
            if deadline.has_passed():
                return None
            wait = min(wait * 1.5, BULK_LONGEST_POLL_SECONDS)

    def _read_back_memberships(
        self, chunk: Sequence[Membership], why: str, deadline: _Deadline
    ) -> dict[Membership, str | None]:
        """Which memberships of a job whose outcome is unknown are there, read with each
        user's roles (reads, never writes), again until `deadline` while the job may run."""
        outcome: dict[Membership, str | None] = {}
        pending = list(dict.fromkeys(chunk))
        wait = BULK_FIRST_POLL_SECONDS
        while True:
            missing = []
            for user_id in dict.fromkeys(m.learning_user_id for m in pending):
                roles = {(r.group_id, r.role) for r in self.list_user_roles(user_id)}
                for m in (m for m in pending if m.learning_user_id == user_id):
                    if (m.group_id, m.role) in roles:
                        outcome[m] = None
                    else:
                        missing.append(m)
            pending = missing
            if not pending or deadline.has_passed():
                break
            deadline.sleep(wait)
            wait = min(wait * 1.5, BULK_LONGEST_POLL_SECONDS)
        for m in pending:
            outcome[m] = f"{why}; the membership is not there yet (the next pass plans it again)"
        return outcome

    # External ids

    def create_external_id(self, platform: str, learning_user_id: str, value: str) -> None:
        body = {
            "platform": platform,
            "targetType": "user",
            "targetId": learning_user_id,
            "value": value,
        }
        self._call("POST", "/api/v2/external-ids", "externalIds:write", body=body)

    def find_external_id(self, platform: str, value: str) -> dict[str, Any] | None:
        """The user mapping of `value` on `platform` (`_id`, `targetId`, ...), if any."""
        path = "/api/v2/external-ids?" + _query(
            [("platform[eq]", platform), ("type[eq]", "user"), ("value[eq]", value)]
        )
        for item in self._paginate(path, "externalIds:read"):
            if isinstance(item, dict) and item.get("_id") and item.get("targetId"):
                return item
        return None

    def replace_external_id(
        self, mapping_id: str, platform: str, learning_user_id: str, value: str
    ) -> None:
        """Point an existing mapping at another account (PUT replaces the whole mapping)."""
        body = {
            "platform": platform,
            "targetType": "user",
            "targetId": learning_user_id,
            "value": value,
        }
        self._call(
            "PUT", f"/api/v2/external-ids/{_segment(mapping_id)}", "externalIds:write", body=body
        )

    def list_external_ids(self, platform: str) -> dict[str, str]:
        """value -> learning user id for every user mapping on `platform`."""
        path = "/api/v2/external-ids?" + _query([("platform[eq]", platform), ("type[eq]", "user")])
        return {
            str(item["value"]): str(item["targetId"])
            for item in self._paginate(path, "externalIds:read")
            if item.get("targetType", "user") == "user"
        }

    # Custom fields (api/360learning.md §4)

    def list_custom_fields(self) -> list[dict[str, Any]]:
        """Every user custom-field definition: `_id`, `name`, `targetType`, `type`."""
        path = "/api/v2/custom-fields?" + _query([("targetType[eq]", "users")])
        return [f for f in self._paginate(path, "customFields:read") if isinstance(f, dict)]

    def list_authorized_values(self, custom_field_id: str) -> list[str]:
        """The values a custom field accepts; [] when any value is accepted."""
        response = self._call(
            "GET",
            f"/api/v2/custom-fields/{_segment(custom_field_id)}/authorized-values",
            "customFields:read",
        )
        values = response.json()
        return [str(v) for v in values] if isinstance(values, list) else []

    def list_custom_values(self, learning_user_id: str) -> list[dict[str, Any]]:
        """The user's custom-field values: `customFieldId`, `type`, `value`."""
        response = self._call(
            "GET", f"{_user_path(learning_user_id)}/custom-fields/values", "users:read"
        )
        values = response.json()
        if not isinstance(values, list):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "custom values are not a list")
        return [v for v in values if isinstance(v, dict)]

    def replace_custom_values(
        self, learning_user_id: str, values: Sequence[Mapping[str, str]]
    ) -> None:
        """Replace the user's whole set of custom-field values (values not sent are removed)."""
        self._call(
            "PUT",
            f"{_user_path(learning_user_id)}/custom-fields/values",
            "users:write",
            body={"customValues": [dict(v) for v in values]},
        )

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        """One group (`_id`, `name`, ...), or None when 360Learning does not know it."""
        response = self._call(
            "GET", f"/api/v2/groups/{_segment(group_id)}", "groups:read", allow_404=True
        )
        return None if response.status_code == 404 else response.json()

    def check_access(self) -> None:
        """Get a token and make one cheap users:read call; raises ApiAuthFailed when refused."""
        self.find_users_by_mail(ACCESS_CHECK_MAIL)

    def probe_write_scope(self, scope: str) -> bool:
        """True when the credential holds the write `scope`, False on 403; changes nothing.

        Sends a write that cannot succeed (an empty body, or a user id no one has), so a
        granted scope ends in 400/404 from validation, which runs after the scope check.
        """
        if scope == "groups:write":
            group_id = self._settings.default_group_id
            method, url, body = "POST", _role_path(group_id, "learner", NO_SUCH_USER_ID), _NO_BODY
        else:
            method, url = SCOPE_PROBES[scope]
            body = {}
        try:
            self._call(method, url, scope, body=body, final_codes=BULK_REFUSALS)
        except ApiRejected:
            return True
        except ApiUnavailable as exc:
            if exc.code in BULK_REFUSALS:  # answered after the scope check: it is granted
                return True
            raise
        except ApiAuthFailed as exc:
            if exc.status == 403:
                return False
            raise
        return True

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


def bulk_poll_deadline_seconds(items: int) -> float:
    """Pure: how long a bulk job of `items` memberships is followed: as long as adding them
    one by one at the company's 10 writes/s would take, plus BULK_QUEUE_SECONDS in the queue."""
    return BULK_QUEUE_SECONDS + items / BULK_ITEMS_PER_SECOND_FLOOR


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


class _Deadline:
    """A budget of seconds for a loop that waits: spent by the clock or by the waits it made,
    whichever says more (a test's sleep may not move the clock)."""

    def __init__(
        self, seconds: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._seconds, self._clock, self._sleep = seconds, clock, sleep
        self._started, self._waited = clock(), 0.0

    def _spent(self) -> float:
        return max(self._clock() - self._started, self._waited)

    def has_passed(self) -> bool:
        return self._spent() >= self._seconds

    def sleep(self, seconds: float) -> None:
        wait = max(0.0, min(seconds, self._seconds - self._spent()))
        self._waited += wait
        self._sleep(wait)


@dataclass(frozen=True)
class Membership:
    """One role of one 360Learning user in one group (role as in bodies: learner, ...)."""

    learning_user_id: str
    group_id: str
    role: str


def add_memberships(
    client: LearningClient, memberships: Sequence[Membership]
) -> dict[Membership, str | None]:
    """Add memberships in bulk jobs when the credential may run and follow them (groups:bulk
    and bulkOperations:read), else one call each.

    Returns the error of each membership (None when added). A membership is written once: only
    those of a job 360Learning did not take (scope, concurrency limit, bulk API disabled) go
    one by one; a job it took is followed, or read back, never redone.
    """
    unique = list(dict.fromkeys(memberships))
    outcome: dict[Membership, str | None] = {}
    one_by_one: list[Membership] = []
    if unique and client.may_use_bulk():
        for start in range(0, len(unique), BULK_MAX_ITEMS):
            chunk = unique[start : start + BULK_MAX_ITEMS]
            operation_url = client.start_bulk_memberships(chunk) if not one_by_one else None
            if operation_url is None:
                one_by_one.extend(chunk)
                continue
            client.is_bulk_granted = True
            outcome.update(client.follow_bulk_memberships(operation_url, chunk))
    else:
        one_by_one = unique
    for membership in one_by_one:
        try:
            client.add_group_role(membership.group_id, membership.role, membership.learning_user_id)
            outcome[membership] = None
        except ApiRejected as exc:
            outcome[membership] = str(exc)
    return outcome


def _bulk_outcome(
    chunk: Sequence[Membership], results: Any, operation: Mapping[str, Any]
) -> dict[Membership, str | None]:
    by_input: dict[Membership, str | None] = {}
    for result in results if isinstance(results, list) else []:
        item = result.get("input") if isinstance(result, dict) else None
        if not isinstance(item, dict):
            continue
        key = Membership(str(item.get("userId")), str(item.get("groupId")), str(item.get("role")))
        ok = result.get("status") == "success"
        by_input[key] = None if ok else str(result.get("errorMessage") or "bulk item failed")
    ended = f"bulk operation ended {operation.get('status')}"
    if operation.get("errorMessage"):
        ended += f": {operation['errorMessage']}"
    # An input the operation never reached (it stopped in error) was not added.
    return {m: by_input[m] if m in by_input else ended for m in chunk}


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


def _manager_path(learning_user_id: str, manager_id: str) -> str:
    return f"{_user_path(learning_user_id)}/managers/{_segment(manager_id)}"


def _role_path(group_id: str, role: str, learning_user_id: str) -> str:
    # Bodies say userAdmin, this path segment says user-admin.
    path_role = "user-admin" if role == "userAdmin" else role
    return f"/api/v2/groups/{_segment(group_id)}/{_segment(path_role)}/{_segment(learning_user_id)}"
