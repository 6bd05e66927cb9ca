"""Frozen domain records passed between the clients, the pure core and the store.

Field names say whose ids they hold (`hibob_id`, `learning_user_id`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# 360Learning user attributes the reconciler manages, by their API v2 names.
MANAGED_ATTRIBUTES = ("mail", "firstName", "lastName", "job", "organization", "lang",
                      "toBeDeactivatedAt")


@dataclass(frozen=True)
class Employee:
    """One Hibob employee as read through the People API.

    `values` maps a Hibob field id (e.g. ``work.department``) to its machine value; `labels`
    maps the same id to the label Bob shows (list fields), when Hibob gave one. A field id
    absent from `values` was not returned (no permission, or invalid): it is *unknown*,
    which is different from a returned null.
    """

    hibob_id: str
    values: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def has(self, field_id: str) -> bool:
        return field_id in self.values

    def value(self, field_id: str) -> Any:
        return self.values.get(field_id)

    def label(self, field_id: str) -> str | None:
        """The value as Bob shows it: the list label when known, else the machine value."""
        if field_id in self.labels:
            return self.labels[field_id]
        raw = self.values.get(field_id)
        if raw is None or isinstance(raw, dict | list):
            return None
        return str(raw)

    @property
    def email(self) -> str | None:
        raw = self.values.get("root.email")
        return raw.strip().lower() if isinstance(raw, str) and raw.strip() else None


@dataclass(frozen=True)
class LearningUser:
    """One 360Learning user as returned by API v2 (`status`: active, invited or deleted)."""

    learning_user_id: str
    status: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mail(self) -> str | None:
        raw = self.attributes.get("mail")
        return raw.lower() if isinstance(raw, str) else None

    @property
    def is_deleted(self) -> bool:
        return self.status == "deleted"


@dataclass(frozen=True)
class GroupRole:
    """A role held in a 360Learning group (role as in bodies: learner, userAdmin, ...)."""

    group_id: str
    role: str


@dataclass(frozen=True)
class SnapshotEntry:
    """What the reconciler last applied for one employee."""

    hibob_id: str
    learning_user_id: str | None
    email: str | None
    state: Mapping[str, Any] | None
    failures: int = 0
    quarantined_until: str | None = None
    last_error: str | None = None

    @property
    def is_active(self) -> bool:
        return bool(self.state and self.state.get("is_active"))
