"""The Hibob simulator's employee store: one company's records and named lists, the knobs the
other modules read, and the HR changes tests and the demo make (hire, change, terminate, rehire,
leave, delete, move the calendar), with the stale-read memory of what changed.

`EmployeeStore` is the base of the resource mixins that `simulator.HibobSimulator` assembles;
nothing here answers HTTP.
"""

from __future__ import annotations

import base64
import copy
import datetime
import threading
import time
from collections import deque
from collections.abc import Callable

from reconciler.sandbox.company import (
    LIFECYCLE_LABELS,
    STANDARD_FIELDS,
    Company,
    ascii_fold,
    generate_company,
    make_list_item,
)
from reconciler.sandbox.documents import Json
from reconciler.sandbox.faults import Faults

LIST_FIELDS = {
    "work.department": "department",
    "work.title": "title",
    "work.siteId": "site",
    "internal.lifecycleStatus": "lifecycleStatus",
    "internal.status": "status",
}
EMPLOYEE_REFERENCES = ("work.reportsTo", "work.manager")
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


class EmployeeStore:
    """One Hibob company's people and lists; the resource mixins add its HTTP answers."""

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
        self.records: dict[str, Json] = {r["root.id"]: dict(r) for r in company.employees}
        self.lists = copy.deepcopy(company.lists)
        self.faults = Faults(sleep=sleep)
        self.requests: list[tuple[str, str, int]] = []
        # Permission knobs: what the service user's permission group lets it see.
        self.hidden_fields: set[str] = set()
        self.hidden_categories: set[str] = set()
        self.hidden_as_null = False  # hidden fields answered null instead of left out
        self.access_filter: Callable[[Json], bool] | None = None
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
        self._stale: dict[str, tuple[float, Json | None]] = {}
        self._deleted: dict[str, Json] = {}
        self._known_fields = set(STANDARD_FIELDS).union(*self.records.values())
        self._next_id = max(map(int, self.records), default=3_330_000_000_000_000_000)
        self._next_item_id = 1_000_000_000
        self._labels: dict[str, dict[str | int, str]] = {
            name: {i["id"]: i["name"] for i in items} for name, items in self.lists.items()
        }

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
            changes: Json = {
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

    def _change(self, hibob_id: str) -> Json:
        record = self.records[hibob_id]
        self._remember(hibob_id, copy.deepcopy(record))
        return record

    def _remember(self, hibob_id: str, before: Json | None) -> None:
        if self.stale_read_seconds > 0 and hibob_id not in self._stale:
            self._stale[hibob_id] = (self._clock() + self.stale_read_seconds, before)

    def _apply(self, record: Json, changes: Json) -> None:
        for field_id, value in changes.items():
            self._set_field(record, field_id, value)
        lifecycle = changes.get("internal.lifecycleStatus")
        if lifecycle is not None and "internal.status" not in changes:
            access = ACCESS_OF.get(record["internal.lifecycleStatus"], "Active")
            self._set_field(record, "internal.status", access)

    def _set_field(self, record: Json, field_id: str, value: object) -> None:
        if isinstance(value, datetime.date):
            value = value.isoformat()
        if field_id in LIST_FIELDS and value is not None:
            value = self._resolve_item(LIST_FIELDS[field_id], str(value))
        record[field_id] = value
        self._known_fields.add(field_id)
        if field_id == "work.siteId":
            # A site is an item id here (`_resolve_item` made it one above) or None.
            site_id = value if isinstance(value, str | int) else None
            record["work.site"] = self._labels["site"].get(site_id) if site_id else None
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


def _field_ids(changes: Json) -> Json:
    return {ALIASES.get(key, key): value for key, value in changes.items()}
