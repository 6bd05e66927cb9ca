"""HibobClient: read employees (and named lists) from Hibob's People API over HTTP Basic.

Called by the reconcile pass and the webhook flow; read-only. Turns Hibob's dual response
layout into `Employee` records, keeping "not returned" (unknown) apart from "returned null".
It must not decide anything about provisioning.

This module holds the calls; turning their answers into records is `hibob_records`'s.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.clients.hibob_records import SERVICE, _fingerprint, _SearchLayout, parse_employee
from reconciler.clients.http import ApiSession, ApiStats, AuthHints
from reconciler.clients.pacer import RateLimiter
from reconciler.clients.transport import build_http_client
from reconciler.core.models import Employee
from reconciler.errors import ApiRejected, ConfigError
from reconciler.redact import remember_secrets
from reconciler.settings_sections import HibobSettings

MAX_FIELDS = 400
MAX_ANSWER_BYTES = 16 * 2**20
"""Any answer but the search: one employee, the field metadata or a named list (~1 MB)."""
BYTES_PER_FIELD = 300
"""Search answer budget per employee and requested field: ~3x the ~100 bytes one field takes
in both layouts (nested and humanReadable) in the simulator and the documented examples."""
FIRST_SYNC_POPULATION = 100_000
"""The population a search answer may hold when none is known yet (the largest benchmarked)."""
_AUTH_HINTS = AuthHints(
    unauthorized="check hibob.service_user_id and hibob.service_user_token (token refreshed?)",
    forbidden="the service user's permission group lacks access to these people or categories",
)


class HibobClient:
    def __init__(
        self,
        settings: HibobSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        user_id, token = settings.service_user_id, settings.service_user_token.get_secret_value()
        # An upstream that echoes the request may show the Authorization header's credentials.
        remember_secrets(user_id, token, base64.b64encode(f"{user_id}:{token}".encode()).decode())
        auth = httpx.BasicAuth(user_id, token)
        client = build_http_client(
            settings.base_url,
            timeout_seconds=settings.timeout_seconds,
            transport=transport,
            auth=auth,
            headers={"accept": "application/json"},
        )
        self._session = ApiSession(
            client,
            SERVICE,
            auth_hints=_AUTH_HINTS,
            sleep=sleep,
            wall_clock=wall_clock,
            deadline_setting="hibob.timeout_seconds",
            max_response_bytes=MAX_ANSWER_BYTES,
        )
        self._population: int | None = None
        # The search endpoint allows 50 calls/min: burst + rate stays under that per minute.
        self._search_limiter = RateLimiter(
            settings.search_per_minute / 60, burst=3, clock=clock, sleep=sleep
        )
        # Limits for single reads and named lists are not published (lists: 50/min).
        self._read_limiter = RateLimiter(
            settings.reads_per_minute / 60, burst=5, clock=clock, sleep=sleep
        )

    @property
    def stats(self) -> ApiStats:
        return self._session.stats

    def close(self) -> None:
        self._session.client.close()

    def expect_population(self, population: int | None) -> None:
        """How many employees the last complete read held (the store's count), which sizes the
        cap on the search answer; None or 0 when unknown (a first sync)."""
        self._population = population or None

    def search_employees(
        self, fields: Sequence[str], *, emails: Sequence[str] = ()
    ) -> list[Employee]:
        """Every employee the service user may see, active or not, in one search call; with
        `emails`, only those holding one of them (the search's one `root.email` filter).

        A record without `root.id` comes back as an Employee whose `hibob_id` is "".
        """
        wanted = _with_root_id(fields)
        # Never send `filters: []`: Hibob answers 400. No filter = everyone.
        body: dict[str, Any] = {"fields": wanted, "showInactive": True, "humanReadable": "APPEND"}
        if emails:
            body["filters"] = [
                {"fieldPath": "root.email", "operator": "equals", "values": list(emails)}
            ]
        response = self._session.send(
            lambda: self._session.client.build_request("POST", "/people/search", json=body),
            limiter=self._search_limiter,
            validate_json=False,
            max_bytes=search_answer_cap(self._population, len(wanted)),
        )
        content = response.content
        del response  # a large company's body is hundreds of MB: drop it once decoded
        layout = _SearchLayout(wanted)
        records = layout.decode(content)
        del content
        # Pop as we go so each record is freed once converted (peak memory ~ one copy).
        records.reverse()
        parsed = []
        while records:
            record = records.pop()
            try:
                parsed.append(layout.to_employee(record, _fingerprint(record)))
            except ApiRejected as exc:
                if exc.code != "missingEmployeeId":
                    raise
                # One record without an id must not stop everyone else: the pass reports it.
                parsed.append(Employee(hibob_id=""))
        self._population = max(len(parsed), self._population or 0)
        return parsed

    def get_employee(self, identifier: str, fields: Sequence[str]) -> Employee | None:
        """One employee by backend id or email; None when Hibob does not know it (404)."""
        wanted = _with_root_id(fields)
        body = {"fields": wanted, "humanReadable": "APPEND"}
        path = "/people/" + quote(identifier, safe="@")
        response = self._session.send(
            lambda: self._session.client.build_request("POST", path, json=body),
            limiter=self._read_limiter,
            allow_404=True,
        )
        if response.status_code == 404:
            return None
        payload = response.json()
        # The docs return the employee object itself; the spec wraps it in {"employees": [...]}.
        if isinstance(payload, dict) and isinstance(payload.get("employees"), list):
            items = payload["employees"]
            if not items:
                return None
            payload = items[0]
        if not isinstance(payload, dict):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "employee is not an object")
        return parse_employee(payload, wanted)

    def list_fields(self) -> list[dict[str, Any]]:
        """Field metadata (id, categoryId, categoryDisplayName, typeData.listId, ...) of every
        employee field; Hibob requires no permission for it."""
        response = self._session.send(
            lambda: self._session.client.build_request("GET", "/company/people/fields"),
            limiter=self._read_limiter,
        )
        payload = response.json()
        if not isinstance(payload, list):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "field metadata is not a list")
        return [item for item in payload if isinstance(item, dict) and "id" in item]

    def get_named_list(self, name: str) -> dict[str, str]:
        """Item id -> label for one named list (hierarchies flattened); names are case-sensitive."""
        path = "/company/named-lists/" + quote(name, safe="")
        response = self._session.send(
            lambda: self._session.client.build_request("GET", path),
            limiter=self._read_limiter,
        )
        payload = response.json()
        labels: dict[str, str] = {}
        _flatten_items(payload.get("items", []) if isinstance(payload, dict) else [], labels)
        return labels


def search_answer_cap(population: int | None, fields: int) -> int:
    """Pure: the most bytes a search answer may hold: BYTES_PER_FIELD for each field of each
    employee, for 4x the known population (at least 10,000 more: a merger), or
    FIRST_SYNC_POPULATION when none is known. A 60-person company's cap is ~45 MB at 15
    fields, so a 200 MB answer is cut early; 100,000 people get ~1.8 GB."""
    expected = FIRST_SYNC_POPULATION if not population else max(4 * population, population + 10_000)
    return expected * max(1, fields) * BYTES_PER_FIELD


def _with_root_id(fields: Sequence[str]) -> list[str]:
    wanted = list(dict.fromkeys(["root.id", *fields]))
    if len(wanted) > MAX_FIELDS:
        raise ConfigError(f"hibob: {len(wanted)} field ids requested, Hibob accepts {MAX_FIELDS}")
    return wanted


def _flatten_items(items: Any, labels: dict[str, str]) -> None:
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or "id" not in item:
            continue
        label = item.get("value") or item.get("name")
        if isinstance(label, str):
            labels[str(item["id"])] = label
        _flatten_items(item.get("children"), labels)
