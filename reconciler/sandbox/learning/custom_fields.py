"""The 360Learning simulator's custom fields (api/360learning.md §4, Core API OpenAPI file).

Mixed into `LearningSimulator`: user custom-field definitions (string and date), their
authorized values, per-user values, `GET /api/v2/custom-fields` (paginated by 1,000), the
authorized-values read, and the replace-all `PUT /api/v2/users/{id}/custom-fields/values`
with its documented errors. Choices the docs leave open are marked "Sim decision".
"""

from __future__ import annotations

import re
from datetime import date

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import (
    _invalid,
    _json_body,
    _list_query,
    _paged,
    _passes,
    _Refusal,
)
from reconciler.sandbox.learning.state import LearningState

# (method, path pattern, handler, scope) — formatted and routed by simulator.py.
CUSTOM_FIELD_ROUTES = [
    ("GET", "/api/v2/custom-fields", "_list_custom_fields", "customFields:read"),
    (
        "GET",
        "/api/v2/custom-fields/{c}/authorized-values",
        "_list_authorized_values",
        "customFields:read",
    ),
    ("GET", "/api/v2/users/{u}/custom-fields/values", "_list_custom_values", "users:read"),
    ("PUT", "/api/v2/users/{u}/custom-fields/values", "_replace_custom_values", "users:write"),
]
_ALL_OPS = ("eq", "ne", "in", "nin")
_FIELD_FILTERS = {"name": _ALL_OPS, "targetType": _ALL_OPS, "type": _ALL_OPS}
MAX_CUSTOM_VALUES = 300
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CustomFieldsMixin(LearningState):
    """Custom-field handlers and helpers; the state (`_custom_fields`...) is `LearningState`'s."""

    custom_fields_page_size = 1000

    # ---- HTTP handlers -----------------------------------------------------------------------

    def _list_custom_fields(self, request: httpx.Request) -> httpx.Response:
        filters, after = _list_query(request, _FIELD_FILTERS)
        for field, allowed in (("targetType", ("users", "contents")), ("type", ("string", "date"))):
            for value in filters.get(field, {}).values():
                for item in value if isinstance(value, list) else [value]:
                    if item not in allowed:
                        raise _invalid(f"{field} must be one of {', '.join(allowed)}")
        rows = [
            f
            for f in self._custom_fields.values()
            if all(_passes(f.get(name), ops, fold=False) for name, ops in filters.items())
        ]
        return _paged(
            request, rows, lambda f: f["_id"], self.custom_fields_page_size, filters, after, dict
        )

    def _list_authorized_values(
        self, request: httpx.Request, custom_field_id: str
    ) -> httpx.Response:
        self._require_custom_field(custom_field_id)
        # Sim decision: a field with no restriction answers [] (any value is accepted).
        return httpx.Response(200, json=list(self._authorized.get(custom_field_id, [])))

    def _list_custom_values(self, request: httpx.Request, user_id: str) -> httpx.Response:
        self._require_user_for_values(user_id)
        return httpx.Response(200, json=self._rendered_values(user_id))

    def _replace_custom_values(self, request: httpx.Request, user_id: str) -> httpx.Response:
        body = _json_body(request)
        items = body.get("customValues") if isinstance(body, dict) else None
        if not isinstance(items, list) or set(body) != {"customValues"}:
            raise _invalid("The body must be {customValues: [...]}")
        if len(items) > MAX_CUSTOM_VALUES:
            raise _invalid(f"customValues holds at most {MAX_CUSTOM_VALUES} items")
        for item in items:
            if (
                not isinstance(item, dict)
                or set(item) != {"customFieldId", "type", "value"}
                or not all(isinstance(item[k], str) and item[k] for k in item)
                or item["type"] not in ("string", "date")
            ):
                raise _invalid("each custom value needs customFieldId, type and a non-empty value")
        user = self._users.get(user_id)
        if user is None or user.get("status") == "deleted":
            # Sim decision: a deleted user's values cannot be replaced (the docs say "any
            # existing user"; refusing is the less convenient reading).
            raise _Refusal(404, "userNotFound", f"No user {user_id}")
        values: dict[str, str] = {}
        for item in items:
            field = self._require_custom_field(item["customFieldId"], users_only=True)
            if field["type"] != item["type"] or (
                field["type"] == "date" and not _is_date(item["value"])
            ):
                raise _Refusal(400, "wrongTypeValue", f"{field['name']} takes a {field['type']}")
            if item["customFieldId"] in values:
                raise _Refusal(
                    400, "multipleValuesForSingleCustomField", f"{field['name']} given twice"
                )
            allowed = self._authorized.get(field["_id"])
            if allowed and item["value"] not in allowed:
                raise _Refusal(
                    400, "unauthorizedValue", f"{item['value']!r} is not a {field['name']} value"
                )
            values[item["customFieldId"]] = item["value"]
        self._custom_values[user_id] = values  # replace-all [docs]
        return httpx.Response(200, json=self._rendered_values(user_id))

    # ---- helpers -----------------------------------------------------------------------------

    def _require_custom_field(self, custom_field_id: str, users_only: bool = False) -> Json:
        field = self._custom_fields.get(custom_field_id)
        # Sim decision: a value for a contents field is a value for no user field: unknown.
        if field is None or (users_only and field["targetType"] != "users"):
            raise _Refusal(404, "customFieldNotFound", f"No custom field {custom_field_id}")
        return field

    def _require_user_for_values(self, user_id: str) -> Json:
        if user_id not in self._users:
            raise _Refusal(404, "userNotFound", f"No user {user_id}")
        return self._users[user_id]

    def _rendered_values(self, user_id: str) -> list[Json]:
        # Sim decision: dates are read back as the DTO's `format: date-time` (midnight UTC),
        # although they are written as YYYY-MM-DD: the reconciler must compare the day only.
        return [
            {
                "customFieldId": field_id,
                "type": self._custom_fields[field_id]["type"],
                "value": f"{value}T00:00:00.000Z"
                if self._custom_fields[field_id]["type"] == "date"
                else value,
            }
            for field_id, value in sorted(self._custom_values.get(user_id, {}).items())
            if field_id in self._custom_fields
        ]

    # ---- test and demo helpers (no HTTP) -----------------------------------------------------

    def add_custom_field(
        self,
        name: str,
        type: str = "string",
        *,
        authorized_values: list[str] | None = None,
        target_type: str = "users",
    ) -> str:
        with self._lock:
            field_id = self._next_id("c")
            self._custom_fields[field_id] = {
                "_id": field_id,
                "name": name,
                "targetType": target_type,
                "type": type,
            }
            if authorized_values:
                self._authorized[field_id] = list(authorized_values)
            return field_id

    def set_custom_value(self, user_id: str, custom_field_id: str, value: str | None) -> None:
        """A value set by hand in the 360Learning UI (None removes it); no validation."""
        with self._lock:
            values = self._custom_values.setdefault(user_id, {})
            if value is None:
                values.pop(custom_field_id, None)
            else:
                values[custom_field_id] = value

    def custom_values_of(self, user_id: str) -> dict[str, str]:
        """field id -> value as written (dates YYYY-MM-DD)."""
        with self._lock:
            return dict(self._custom_values.get(user_id, {}))


def _is_date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
