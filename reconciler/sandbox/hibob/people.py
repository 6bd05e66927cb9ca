"""The Hibob simulator's People read API: search (one strict filter, showInactive) and read by
id or email, with what the service user's permissions hide, silent omissions, stale reads,
the dual slash/nested layout and the humanReadable forms (api/hibob.md 2, 4).

Mixed into `HibobSimulator`; `_Rejected` is the documented error answer its routing turns
into a response.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from typing import TypeAlias

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.hibob.employees import EMPLOYEE_REFERENCES, LIST_FIELDS, EmployeeStore
from reconciler.sandbox.hibob.metadata import category

DEFAULT_CATEGORIES = {"root", "about", "employment", "work"}
MAX_FIELDS = 400
FILTER_PATHS = ("root.id", "root.email")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
Placement: TypeAlias = tuple[str, tuple[str, ...], str, str]
"""Where a field goes in an answer: field id, nested parents, nested key, slash key."""


class _Rejected(Exception):
    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status, self.key, self.message = status, key, message


class PeopleMixin(EmployeeStore):
    # ---- endpoints -------------------------------------------------------------------------

    def _search(self, request: httpx.Request) -> Json:
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

    def _read_one(self, request: httpx.Request, identifier: str) -> Json:
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

    # ---- reading ---------------------------------------------------------------------------

    def _requested_fields(self, body: Json) -> list[str]:
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

    def _can_see(self, record: Json) -> bool:
        return self.access_filter is None or bool(self.access_filter(record))

    def _find(self, identifier: str) -> Json | None:
        people = self._readable()
        if "@" not in identifier:
            return people.get(identifier)
        wanted = identifier.strip().lower()
        # Two people sharing an email: the first one wins (HiBob's behaviour is undocumented).
        return next((r for r in people.values() if _email_key(r) == wanted), None)

    def _readable(self) -> dict[str, Json]:
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

    def _render(self, record: Json, layout: list[Placement], mode: str) -> Json:
        """Dual layout: slash keys only for non-null values, nested objects with nulls too."""
        out: Json = {}
        human: Json = {}
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

    def _reference(self, hibob_id: str | None) -> Json | None:
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
            labels = self._labels.get(LIST_FIELDS[field_id], {})
            return labels.get(raw) if isinstance(raw, str | int) else None
        if isinstance(raw, bool):
            return "Yes" if raw else "No"
        if isinstance(raw, int | float):
            return str(raw)
        if isinstance(raw, str) and _ISO_DATE.fullmatch(raw):
            return datetime.date.fromisoformat(raw).strftime("%d/%m/%Y")
        return raw

    def hide_category(self, category_id: str) -> None:
        """Withdraw View on a category (e.g. "lifecycle" hides every internal.* field)."""
        self.hidden_categories.add(category_id)


def _json_body(request: httpx.Request) -> Json:
    if not request.content:
        return {}
    try:
        body = json.loads(request.content)
    except ValueError:
        raise _Rejected(400, "BadRequest", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Rejected(400, "BadRequest", "Request body must be a JSON object")
    return body


def _human_mode(body: Json) -> str:
    mode = body.get("humanReadable")
    return mode if mode in ("APPEND", "REPLACE") else ""  # invalid values count as empty


def _filter_predicate(body: Json) -> Callable[[Json], bool]:
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


def _email_key(record: Json) -> str | None:
    email = record.get("root.email")
    return email.strip().lower() if isinstance(email, str) else None


def _layout(fields: list[str]) -> list[Placement]:
    """Where each field goes: nested parents and key (root fields un-prefixed), slash key."""
    layout = []
    for field_id in fields:
        parts = field_id.split(".")
        if parts[0] == "root":
            parts = parts[1:]
        layout.append((field_id, tuple(parts[:-1]), parts[-1], "/" + field_id.replace(".", "/")))
    return layout


def _put(target: Json, parents: tuple[str, ...], leaf: str, value: object) -> None:
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
