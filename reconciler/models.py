"""Frozen domain records passed between the clients, the pure core and the store.

Field names say whose ids they hold (`hibob_id`, `learning_user_id`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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

    @property
    def was_ever_restored(self) -> bool:
        """A restore drops groups, roles and "being the manager of others" (360Learning help)."""
        return bool(self.attributes.get("reactivatedAt"))

    @property
    def last_deleted_at(self) -> str | None:
        deleted = self.attributes.get("deletedAt")
        return str(deleted[-1]) if isinstance(deleted, list) and deleted else None


@dataclass(frozen=True)
class GroupRole:
    """A role held in a 360Learning group (role as in bodies: learner, userAdmin, ...)."""

    group_id: str
    role: str


@dataclass(frozen=True)
class AppliedState:
    """What the reconciler last applied for one employee's 360Learning user.

    `groups` are the roles the reconciler manages; `kept_groups` the roles the user already had
    when it was adopted, which the reconciler never removes. `manager` is the manager's Hibob
    id. `is_external_id_linked`: the external-id mapping to the Hibob id is known to exist.
    Serialised only by the store.
    """

    is_active: bool
    attributes: Mapping[str, Any] = field(default_factory=dict)
    groups: frozenset[GroupRole] = frozenset()
    manager: str | None = None
    kept_groups: frozenset[GroupRole] = frozenset()
    is_external_id_linked: bool = False


@dataclass(frozen=True)
class SnapshotEntry:
    """One employee as the store knows it: the link, the last applied state, its failures."""

    hibob_id: str
    learning_user_id: str | None
    email: str | None
    state: AppliedState | None
    failures: int = 0
    quarantined_until: datetime | None = None
    last_error: str | None = None

    @property
    def is_active(self) -> bool:
        return self.state is not None and self.state.is_active

    @property
    def is_linked(self) -> bool:
        return self.learning_user_id is not None

    def is_quarantined(self, now: datetime) -> bool:
        return self.quarantined_until is not None and self.quarantined_until > now


class PassOutcome(StrEnum):
    """How a pass ended, as stored in history and shown by `status`; each maps to an exit code."""

    OK = "ok"
    HELD = "held"
    ERRORS = "errors"
    FAILED = "failed"
    DRY_RUN = "dry-run"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def exit_code(self) -> int:
        """0 completed, 1 could not complete or a write failed, 3 held by a safety limit."""
        if self in (
            PassOutcome.FAILED,
            PassOutcome.ERRORS,
            PassOutcome.INTERRUPTED,
            PassOutcome.CANCELLED,
        ):
            return 1
        return 3 if self is PassOutcome.HELD else 0
