"""Stateful simulator of Hibob's People read API and named lists, and of the webhooks Bob sends.

Tests, the demo and the benchmark mount `HibobSimulator.handle` through `httpx.MockTransport`
or `reconciler.sandbox.server.serve`. It follows api/hibob.md, quirks included: silent
omission of fields and people, the dual slash/nested layout, 401 with an empty body, strict
filters, per-endpoint rate limits, a WAF. Only `deliver_webhook` sends anything, to loopback.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import hmac
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from reconciler.sandbox.company import (
    LIFECYCLE_LABELS,
    STANDARD_FIELDS,
    Company,
    ascii_fold,
    generate_company,
    make_list_item,
)
from reconciler.sandbox.faults import DropConnection, Faults, SimulatedTimeout

LIST_FIELDS = {
    "work.department": "department",
    "work.title": "title",
    "work.siteId": "site",
    "internal.lifecycleStatus": "lifecycleStatus",
    "internal.status": "status",
}
EMPLOYEE_REFERENCES = ("work.reportsTo", "work.manager")
# categoryDisplayName as a live tenant shows it (api/hibob.md 1.4, 4). Sim decision: Bob's
# name for the category of `employee.*` fields was not captured; "Employment" stands in.
CATEGORY_NAMES = {
    "root": "Basic info",
    "work": "Work",
    "lifecycle": "Lifecycle",
    "about": "About",
    "employment": "Employment",
    "employee": "Employment",
    "personal": "Personal",
    "home": "Personal contact details",
}
HISTORICAL_FIELDS = frozenset(
    {
        "work.title",
        "work.department",
        "work.siteId",
        "work.reportsTo",
        "work.manager",
        "internal.lifecycleStatus",
    }
)
DEFAULT_CATEGORIES = {"root", "about", "employment", "work"}
MAX_FIELDS = 400
FILTER_PATHS = ("root.id", "root.email")
WINDOW_SECONDS = 60
WAF_THRESHOLD, WAF_WINDOW_SECONDS, WAF_BLOCK_SECONDS = 50, 10.0, 300.0
ACCESS_OF = {
    "employed": "Active",
    "hired": "Inactive",
    "terminated": "Inactive",
    "garden leave": "Active",
    "leave": "Active",
    "parental leave": "Active",
}
ALIASES = {
    "email": "root.email",
    "first_name": "root.firstName",
    "surname": "root.surname",
    "display_name": "root.displayName",
    "department": "work.department",
    "title": "work.title",
    "site": "work.siteId",
    "manager_id": "work.reportsTo",
    "start_date": "work.startDate",
    "status": "internal.status",
    "lifecycle_status": "internal.lifecycleStatus",
    "termination_date": "internal.terminationDate",
    "last_day_of_work": "employee.lastDayOfWork",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WRONG_PATH_PAGE = b"<!DOCTYPE html><html><head><title>Bob</title></head><body></body></html>"


def sign(body: bytes, secret: str) -> str:
    """Bob-Signature: Base64 of HMAC-SHA512 over the raw body, keyed with the webhook secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()


def ping_bodies() -> list[bytes]:
    """What Bob POSTs when a webhook is set up: plain text first, then JSON if that failed."""
    return [b"Ping test", b'{"text":"Ping test"}']


def category(field_id: str) -> str:
    """Permission category of a field id; `internal.*` fields sit in the Lifecycle category."""
    prefix = field_id.split(".", 1)[0]
    return "lifecycle" if prefix == "internal" else prefix


class _Rejected(Exception):
    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status, self.key, self.message = status, key, message


class HibobSimulator:
    ping_bodies = staticmethod(ping_bodies)

    def __init__(
        self,
        company: Company | None = None,
        *,
        service_user_id: str = "sandbox-user",
        service_user_token: str = "sandbox-token",
        today: datetime.date | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if company is None:
            company = generate_company(0, today=today)
        self.today = today or company.today
        self.company_id, self.domain = company.company_id, company.domain
        self.ceo_id = company.ceo_id
        self.records: dict[str, dict] = {r["root.id"]: dict(r) for r in company.employees}
        self.lists = copy.deepcopy(company.lists)
        self.faults = Faults(sleep=sleep)
        self.requests: list[tuple[str, str, int]] = []
        # Permission knobs: what the service user's permission group lets it see.
        self.hidden_fields: set[str] = set()
        self.hidden_categories: set[str] = set()
        self.hidden_as_null = False  # hidden fields answered null instead of left out
        self.access_filter: Callable[[dict], bool] | None = None
        # A read by id of someone the access rights hide: observed live as 404, but the
        # reference lists 403 "no permission to this employee"; tests pick either.
        self.hidden_read_status = 404
        # Sim decision: people left out of search answers only (a truncated or inconsistent
        # search); the docs promise no truncation, which is exactly what must not be trusted.
        self.search_omits: set[str] = set()
        # Only search's 50/min is documented for People; /people/{id} gets the same number as
        # an assumption (HiBob's per-endpoint table was not retrievable). Named lists: 50/min.
        self.search_limit_per_minute = 50
        self.read_limit_per_minute = 50
        self.lists_limit_per_minute = 50
        self.waf_enabled = True
        # Off by default; HiBob documents reads lagging writes by up to ~20 s.
        self.stale_read_seconds = 0.0
        self._auth = (
            "Basic " + base64.b64encode(f"{service_user_id}:{service_user_token}".encode()).decode()
        )
        self._clock = clock
        self._lock = threading.RLock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._auth_failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._stale: dict[str, tuple[float, dict | None]] = {}
        self._deleted: dict[str, dict] = {}
        self._known_fields = set(STANDARD_FIELDS).union(*self.records.values())
        self._next_id = max(map(int, self.records), default=3_330_000_000_000_000_000)
        self._next_item_id = 1_000_000_000
        self._labels = {
            name: {i["id"]: i["name"] for i in items} for name, items in self.lists.items()
        }

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

    def _route(self, request: httpx.Request) -> tuple[str, Callable | None]:
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

    def _quota(self, bucket: str, now: float, take: bool) -> tuple[bool, dict[str, str]]:
        """Fixed one-minute window per endpoint, opened by its first request."""
        limit = getattr(self, f"{bucket}_limit_per_minute", 50)
        start, used = self._windows.get(bucket, (now, 0))
        if now >= start + WINDOW_SECONDS:
            start, used = now, 0
        allowed = used < limit
        if take and allowed:
            used += 1
            self._windows[bucket] = (start, used)
        return allowed, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - used),
            "X-RateLimit-Reset": str(math.ceil(start + WINDOW_SECONDS)),
        }

    def _count_auth_failure(self, auth: str, now: float) -> None:
        """WAF: >= 50 401s with one Authorization header within 10 s blocks it for 5 minutes."""
        failures = self._auth_failures.setdefault(auth, deque())
        failures.append(now)
        while failures and failures[0] <= now - WAF_WINDOW_SECONDS:
            failures.popleft()
        if len(failures) >= WAF_THRESHOLD:
            self._blocked_until[auth] = now + WAF_BLOCK_SECONDS
            failures.clear()

    # ---- endpoints -------------------------------------------------------------------------

    def _search(self, request: httpx.Request) -> dict:
        body = _json_body(request)
        fields, mode = self._requested_fields(body), _human_mode(body)
        show_inactive = body.get("showInactive", False)
        if not isinstance(show_inactive, bool):
            raise _Rejected(400, "BadRequest", "showInactive must be a boolean")
        matches = _filter_predicate(body)
        people = [
            r
            for r in self._readable().values()
            if (show_inactive or r.get("internal.status") == "Active")
            and self._can_see(r)
            and matches(r)
            and r["root.id"] not in self.search_omits
        ]
        layout = _layout(fields)
        return {"employees": [self._render(r, layout, mode) for r in people]}

    def _read_one(self, request: httpx.Request, identifier: str) -> dict:
        # No showInactive here: inactive people are returned when the access rights cover them.
        # People the service user may not see answer 404 like unknown ones (the reference also
        # lists 403 for this case; live, only 404 for unknown ids was observed).
        body = _json_body(request)
        fields, mode = self._requested_fields(body), _human_mode(body)
        record = self._find(identifier)
        if record is not None and not self._can_see(record) and self.hidden_read_status == 403:
            raise _Rejected(403, "Forbidden", "No permission to this employee")
        if record is None or not self._can_see(record):
            raise _Rejected(404, "NotFound", f"Employee {identifier} not found")
        return self._render(record, _layout(fields), mode)

    def _named_list(self, request: httpx.Request, name: str) -> dict | None:
        if name not in self.lists:  # case-sensitive, as observed live; 404 has no body
            return None
        include_archived = request.url.params.get("includeArchived", "").lower() == "true"
        return {"name": name, "items": _unarchived(self.lists[name], include_archived)}

    def _field_metadata(self, request: httpx.Request) -> list[dict]:
        # Needs no permission at all (api/hibob.md 1.4): hidden categories are listed too.
        return [self._describe_field(field_id) for field_id in sorted(self._known_fields)]

    def _describe_field(self, field_id: str) -> dict:
        """One `Field` (spec schema): the category is the one `hide_category` withdraws."""
        category_id = category(field_id)
        list_id = LIST_FIELDS.get(field_id)
        if list_id:
            kind = "list"
        elif field_id in EMPLOYEE_REFERENCES or field_id == "root.id":
            kind = "employee-reference"
        elif field_id.endswith(("Date", "DayOfWork")):
            kind = "date"
        else:
            kind = "text"
        leaf = field_id.rsplit(".", 1)[1]
        return {
            "id": field_id,
            "categoryId": category_id,
            "category": category_id,
            "categoryDisplayName": CATEGORY_NAMES.get(category_id, category_id.capitalize()),
            "name": re.sub(r"(?<!^)(?=[A-Z])", " ", leaf).capitalize(),
            # Root fields sit un-prefixed in the nested form (api/hibob.md 4).
            "jsonPath": field_id.removeprefix("root."),
            "type": kind,
            "typeData": {"listId": list_id} if list_id else {},
            "historical": field_id in HISTORICAL_FIELDS,
        }

    # ---- reading ---------------------------------------------------------------------------

    def _requested_fields(self, body: dict) -> list[str]:
        fields = body.get("fields") or None  # assumption: [] is treated like omitted
        if fields is None:
            fields = [
                f
                for f in sorted(self._known_fields)
                if category(f) in DEFAULT_CATEGORIES and ".custom." not in f
            ]
        elif not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise _Rejected(400, "BadRequest", "fields must be a list of field ids")
        elif len(fields) > MAX_FIELDS:
            raise _Rejected(400, "BadRequest", f"At most {MAX_FIELDS} fields can be requested")
        # Unknown and unpermitted field ids are dropped without a word: HTTP 200 regardless
        # (or, with `hidden_as_null`, unpermitted ones come back null: one integrator's report).
        return [
            f
            for f in dict.fromkeys(fields)
            if f in self._known_fields and (self.hidden_as_null or not self._is_hidden(f))
        ]

    def _is_hidden(self, field_id: str) -> bool:
        return field_id in self.hidden_fields or category(field_id) in self.hidden_categories

    def _can_see(self, record: dict) -> bool:
        return self.access_filter is None or bool(self.access_filter(record))

    def _find(self, identifier: str) -> dict | None:
        people = self._readable()
        if "@" not in identifier:
            return people.get(identifier)
        wanted = identifier.strip().lower()
        # Two people sharing an email: the first one wins (HiBob's behaviour is undocumented).
        return next((r for r in people.values() if _email_key(r) == wanted), None)

    def _readable(self) -> dict[str, dict]:
        if not self._stale:
            return self.records
        now = self._clock()
        self._stale = {k: v for k, v in self._stale.items() if v[0] > now}
        view = dict(self.records)
        for hibob_id, (_, before) in self._stale.items():
            if before is None:
                view.pop(hibob_id, None)
            else:
                view[hibob_id] = before
        return view

    def _render(self, record: dict, layout: list[tuple], mode: str) -> dict:
        """Dual layout: slash keys only for non-null values, nested objects with nulls too."""
        out: dict = {}
        human: dict = {}
        for field_id, parents, leaf, slash in layout:
            shown = raw = None if self._is_hidden(field_id) else record.get(field_id)
            if raw is not None and mode:
                label = self._human(field_id, raw)
                if mode == "REPLACE":
                    shown = label
                elif label is not None:
                    _put(human, parents, leaf, label)
            if field_id == "work.reportsTo" and mode != "REPLACE":
                shown = self._reference(raw)
            _put(out, parents, leaf, shown)
            if shown is not None:
                out[slash] = {"value": shown}
        if mode == "APPEND":
            out["humanReadable"] = human
        return out

    def _reference(self, hibob_id: str | None) -> dict | None:
        manager = self.records.get(hibob_id) if hibob_id else None
        if manager is None:
            return None
        return {
            "id": hibob_id,
            "firstName": manager["root.firstName"],
            "surname": manager["root.surname"],
            "email": manager["root.email"],
            "displayName": manager["root.displayName"],
        }

    def _human(self, field_id: str, raw: object) -> object:
        """Bob's display form: labels, names, 'Yes'/'No', numbers as text, dd/mm/yyyy dates."""
        if raw is None:
            return None
        if field_id in EMPLOYEE_REFERENCES:
            manager = self.records.get(str(raw))
            return manager["root.displayName"] if manager else None
        if field_id in LIST_FIELDS:
            # Sim decision: an item id its list no longer knows (removed, or a label Bob
            # withholds) gets no human-readable entry, not its id re-printed.
            return self._labels.get(LIST_FIELDS[field_id], {}).get(raw)
        if isinstance(raw, bool):
            return "Yes" if raw else "No"
        if isinstance(raw, int | float):
            return str(raw)
        if isinstance(raw, str) and _ISO_DATE.fullmatch(raw):
            return datetime.date.fromisoformat(raw).strftime("%d/%m/%Y")
        return raw

    # ---- HR changes (tests and demo) -------------------------------------------------------

    def rename_list_item(self, list_name: str, old: str, new: str) -> None:
        """An HR admin renames a list item: its id stays, every employee's label changes."""
        with self._lock:
            labels = self._labels[list_name]
            item_id = next(i for i, label in labels.items() if label == old)
            labels[item_id] = new
            stack = list(self.lists[list_name])
            while stack:
                item = stack.pop()
                if item.get("id") == item_id:
                    item["name"] = item["value"] = new
                stack.extend(item.get("children") or [])

    def hide_category(self, category_id: str) -> None:
        """Withdraw View on a category (e.g. "lifecycle" hides every internal.* field)."""
        self.hidden_categories.add(category_id)

    def add_employee(self, **fields: object) -> str:
        """Hire someone; keys are field ids (`**{"work.title": ...}`) or ALIASES (`email=`)."""
        with self._lock:
            self._next_id += 7_919_000_001
            hibob_id = str(self._next_id)
            self._remember(hibob_id, None)
            record = self.records[hibob_id] = dict.fromkeys(STANDARD_FIELDS)
            changes = _field_ids(fields)
            start = changes.get("work.startDate", self.today)
            is_future = str(start) > self.today.isoformat()
            defaults = {
                "root.id": hibob_id,
                "root.firstName": "New",
                "root.surname": f"Hire{len(self.records)}",
                "work.department": "Engineering",
                "work.title": "Software Engineer",
                "work.siteId": "London",
                "work.startDate": start,
                "work.reportsTo": self.ceo_id if self.ceo_id in self.records else None,
                "work.employeeIdInCompany": len(self.records),
                "internal.lifecycleStatus": "hired" if is_future else "employed",
            }
            self._apply(record, defaults | changes)
            first, last = record["root.firstName"], record["root.surname"]
            if "root.email" not in changes:
                record["root.email"] = (
                    f"{ascii_fold(str(first))}.{ascii_fold(str(last))}@{self.domain}"
                )
            if "root.displayName" not in changes:
                record["root.displayName"] = f"{first} {last}"
            return hibob_id

    def update_employee(self, hibob_id: str, **changes: object) -> None:
        """Change fields; list fields take a label ("Sales", created if new) or an item id."""
        with self._lock:
            self._apply(self._change(hibob_id), _field_ids(changes))

    def terminate(
        self, hibob_id: str, on: datetime.date, last_day: datetime.date | None = None
    ) -> None:
        """Terminated/Inactive if `on` <= today; else stays Active until `set_today` passes it
        (garden leave when `last_day` comes before `on`)."""
        with self._lock:
            changes: dict = {
                "internal.terminationDate": on,
                "employee.lastDayOfWork": last_day or on,
            }
            if on <= self.today:
                changes["internal.lifecycleStatus"] = "terminated"
            elif last_day and last_day < on:
                changes["internal.lifecycleStatus"] = "garden leave"
            self._apply(self._change(hibob_id), changes)

    def rehire(self, hibob_id: str, on: datetime.date | None = None) -> None:
        on = on or self.today
        with self._lock:
            self._apply(
                self._change(hibob_id),
                {
                    "work.startDate": on,
                    "internal.terminationDate": None,
                    "employee.lastDayOfWork": None,
                    "internal.lifecycleStatus": "hired" if on > self.today else "employed",
                },
            )

    def start_leave(self, hibob_id: str, keeps_access: bool) -> None:
        with self._lock:
            self._apply(
                self._change(hibob_id),
                {
                    "internal.lifecycleStatus": "leave",
                    "internal.status": "Active" if keeps_access else "Inactive",
                },
            )

    def end_leave(self, hibob_id: str) -> None:
        with self._lock:
            self._apply(self._change(hibob_id), {"internal.lifecycleStatus": "employed"})

    def delete_employee(self, hibob_id: str) -> None:
        with self._lock:
            self._change(hibob_id)
            self._deleted[hibob_id] = self.records.pop(hibob_id)

    def set_today(self, today: datetime.date) -> None:
        """Move the calendar: start dates and termination dates that arrive take effect."""
        with self._lock:
            day, self.today = today.isoformat(), today
            for hibob_id, record in list(self.records.items()):
                status = record.get("internal.lifecycleStatus")
                ended = record.get("internal.terminationDate")
                last_day = record.get("employee.lastDayOfWork")
                if status == "hired" and (record.get("work.startDate") or day) <= day:
                    self._apply(self._change(hibob_id), {"internal.lifecycleStatus": "employed"})
                elif ended and ended <= day and status != "terminated":
                    self._apply(self._change(hibob_id), {"internal.lifecycleStatus": "terminated"})
                elif status == "garden leave" and last_day and last_day < day:
                    self._apply(self._change(hibob_id), {"internal.status": "Inactive"})

    def _change(self, hibob_id: str) -> dict:
        record = self.records[hibob_id]
        self._remember(hibob_id, copy.deepcopy(record))
        return record

    def _remember(self, hibob_id: str, before: dict | None) -> None:
        if self.stale_read_seconds > 0 and hibob_id not in self._stale:
            self._stale[hibob_id] = (self._clock() + self.stale_read_seconds, before)

    def _apply(self, record: dict, changes: dict) -> None:
        for field_id, value in changes.items():
            self._set_field(record, field_id, value)
        lifecycle = changes.get("internal.lifecycleStatus")
        if lifecycle is not None and "internal.status" not in changes:
            access = ACCESS_OF.get(record["internal.lifecycleStatus"], "Active")
            self._set_field(record, "internal.status", access)

    def _set_field(self, record: dict, field_id: str, value: object) -> None:
        if isinstance(value, datetime.date):
            value = value.isoformat()
        if field_id in LIST_FIELDS and value is not None:
            value = self._resolve_item(LIST_FIELDS[field_id], str(value))
        record[field_id] = value
        self._known_fields.add(field_id)
        if field_id == "work.siteId":
            record["work.site"] = self._labels["site"].get(value) if value else None
        elif field_id == "work.site":
            record["work.siteId"] = self._resolve_item("site", str(value)) if value else None
        elif field_id in EMPLOYEE_REFERENCES:
            record["work.reportsTo"] = record["work.manager"] = value

    def _resolve_item(self, list_name: str, value: str) -> str | int:
        """An item id, or the id of the item with that label, or a new item's id."""
        items = self.lists.setdefault(list_name, [])
        for item in items:
            if value in (str(item["id"]), item["name"]):
                return item["id"]
        if list_name in ("lifecycleStatus", "status"):
            item = make_list_item(
                value.lower() if list_name == "lifecycleStatus" else value,
                LIFECYCLE_LABELS.get(value.lower(), value),
            )
        else:
            self._next_item_id += 1
            numeric = bool(items) and isinstance(items[0]["id"], int)
            item_id = self._next_item_id if numeric else str(self._next_item_id)
            item = make_list_item(item_id, value)
        items.append(item)
        self._labels.setdefault(list_name, {})[item["id"]] = item["name"]
        return item["id"]

    # ---- webhooks --------------------------------------------------------------------------

    def make_webhook(
        self,
        event_type: str,
        hibob_id: str,
        secret: str,
        *,
        field_updates: list[str] | None = None,
        triggered_at: datetime.datetime | None = None,
        triggered_by: str = "system",
    ) -> tuple[bytes, dict[str, str]]:
        """A v2 event as Bob sends it: raw body bytes and headers (with Bob-Signature)."""
        data: dict = {"employeeId": hibob_id}
        if event_type == "employee.updated":
            # Element shape of fieldUpdates is an open question; we send dotted field ids.
            data["fieldUpdates"] = list(field_updates or [])
        if event_type == "employee.deleted":
            record = self.records.get(hibob_id) or self._deleted.get(hibob_id) or {}
            data["email"] = record.get("root.email")
        at = triggered_at or datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        if at.tzinfo is not None:
            at = at.astimezone(datetime.UTC).replace(tzinfo=None)
        envelope = {
            "companyId": self.company_id,
            "type": event_type,
            "triggeredBy": triggered_by,
            "triggeredAt": at.isoformat(),
            "version": "v2",
            "data": data,
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        return body, {"Bob-Signature": sign(body, secret), "Content-Type": "application/json"}

    def deliver_webhook(
        self,
        url: str,
        event_type: str,
        hibob_id: str,
        secret: str,
        *,
        client: httpx.Client | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """POST a signed event to a loopback URL (refuses any other host)."""
        host = httpx.URL(url).host
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"refusing to deliver a webhook to non-loopback host {host!r}")
        body, headers = self.make_webhook(event_type, hibob_id, secret, **kw)
        if client is not None:
            return client.post(url, content=body, headers=headers)
        with httpx.Client(timeout=10.0, trust_env=False) as own:
            return own.post(url, content=body, headers=headers)


def _error(status: int, key: str, message: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(status, json={"key": key, "error": message}, headers=headers)


def _json_body(request: httpx.Request) -> dict:
    if not request.content:
        return {}
    try:
        body = json.loads(request.content)
    except ValueError:
        raise _Rejected(400, "BadRequest", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Rejected(400, "BadRequest", "Request body must be a JSON object")
    return body


def _human_mode(body: dict) -> str:
    mode = body.get("humanReadable")
    return mode if mode in ("APPEND", "REPLACE") else ""  # invalid values count as empty


def _filter_predicate(body: dict) -> Callable[[dict], bool]:
    if "filters" not in body:
        return lambda record: True
    filters = body["filters"]
    if not isinstance(filters, list) or len(filters) != 1 or not isinstance(filters[0], dict):
        raise _Rejected(
            400,
            "BadRequest",
            "filters must hold exactly one filter object; omit the property for no filter",
        )
    path, operator, values = (filters[0].get(k) for k in ("fieldPath", "operator", "values"))
    if path not in FILTER_PATHS:
        raise _Rejected(400, "BadRequest", f"Unsupported filter fieldPath: {path}")
    if operator != "equals":
        raise _Rejected(400, "BadRequest", f"Unsupported filter operator: {operator}")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _Rejected(400, "BadRequest", "Filter values must be a non-empty list of strings")
    if path == "root.id":
        ids = set(values)
        return lambda record: record["root.id"] in ids
    emails = {v.strip().lower() for v in values}
    return lambda record: _email_key(record) in emails


def _email_key(record: dict) -> str | None:
    email = record.get("root.email")
    return email.strip().lower() if isinstance(email, str) else None


def _field_ids(changes: dict) -> dict:
    return {ALIASES.get(key, key): value for key, value in changes.items()}


def _layout(fields: list[str]) -> list[tuple[str, tuple[str, ...], str, str]]:
    """Where each field goes: nested parents and key (root fields un-prefixed), slash key."""
    layout = []
    for field_id in fields:
        parts = field_id.split(".")
        if parts[0] == "root":
            parts = parts[1:]
        layout.append((field_id, tuple(parts[:-1]), parts[-1], "/" + field_id.replace(".", "/")))
    return layout


def _put(target: dict, parents: tuple[str, ...], leaf: str, value: object) -> None:
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _unarchived(items: list[dict], include_archived: bool) -> list[dict]:
    return [
        {**item, "children": _unarchived(item["children"], include_archived)}
        for item in items
        if include_archived or not item["archived"]
    ]
