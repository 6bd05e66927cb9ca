"""The Hibob simulator's company metadata: named lists (archived items hidden unless asked)
and the people field catalogue with each field's permission category (api/hibob.md 1.4, 3).

Mixed into `HibobSimulator`; `category` is also what the permission knobs in people.py use.
"""

from __future__ import annotations

import re

import httpx

from reconciler.sandbox.documents import Json, ListItem
from reconciler.sandbox.hibob.employees import EMPLOYEE_REFERENCES, LIST_FIELDS, EmployeeStore

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


def category(field_id: str) -> str:
    """Permission category of a field id; `internal.*` fields sit in the Lifecycle category."""
    prefix = field_id.split(".", 1)[0]
    return "lifecycle" if prefix == "internal" else prefix


class MetadataMixin(EmployeeStore):
    def _named_list(self, request: httpx.Request, name: str) -> Json | None:
        if name not in self.lists:  # case-sensitive, as observed live; 404 has no body
            return None
        include_archived = request.url.params.get("includeArchived", "").lower() == "true"
        return {"name": name, "items": _unarchived(self.lists[name], include_archived)}

    def _field_metadata(self, request: httpx.Request) -> list[Json]:
        # Needs no permission at all (api/hibob.md 1.4): hidden categories are listed too.
        return [self._describe_field(field_id) for field_id in sorted(self._known_fields)]

    def _describe_field(self, field_id: str) -> Json:
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


def _unarchived(items: list[ListItem], include_archived: bool) -> list[ListItem]:
    return [
        {**item, "children": _unarchived(item["children"], include_archived)}
        for item in items
        if include_archived or not item["archived"]
    ]
