"""The types of the JSON documents the simulators keep and answer: request bodies, stored records
(a 360Learning user, group, mapping or bulk operation; a Hibob employee or list item) and
response bodies. A `Json` value is whatever JSON holds, so a handler checks its type before use.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypedDict

Json: TypeAlias = dict[str, Any]
"""A JSON object keyed by its property names."""


class ListItem(TypedDict):
    """One item of a Hibob named list, as `GET /company/named-lists/{name}` shows it."""

    id: str | int
    value: str
    name: str
    archived: bool
    children: list[ListItem]
