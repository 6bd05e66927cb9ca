"""Frozen domain records passed between the clients, the pure core and the store.

Field names say whose ids they hold (`hibob_id`, `learning_user_id`). Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar

from reconciler.core.vocabulary import ActionKind
from reconciler.core.vocabulary import (
    PassOutcome as PassOutcome,  # imported from here by older code
)


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
    unlabelled: frozenset[str] = frozenset()
    """Fields with a value but no human-readable form (Hibob gives one for every non-null
    value): a list item whose label Hibob did not give. Unknown as a label (§1.5)."""
    fingerprint: str = field(default="", compare=False)
    """A hash of the record as the search returned it ("" when not read by a search): what
    lets an incremental pass skip an employee whose record did not change (core.fingerprint)."""

    def has(self, field_id: str) -> bool:
        return field_id in self.values

    def has_label(self, field_id: str) -> bool:
        """Known as Bob shows it: returned, and not a value whose label Hibob withheld."""
        return field_id in self.values and field_id not in self.unlabelled

    def value(self, field_id: str) -> Any:
        return self.values.get(field_id)

    def label(self, field_id: str) -> str | None:
        """The value as Bob shows it: the list label when known, else the machine value;
        None when unknown (not returned, or a list item id without its label)."""
        if field_id in self.labels:
            return self.labels[field_id]
        if field_id in self.unlabelled:
            return None
        raw = self.values.get(field_id)
        if raw is None or isinstance(raw, dict | list):
            return None
        return str(raw)

    @cached_property
    def email(self) -> str | None:
        """`root.email` trimmed and lower-cased; None when missing or blank (read once: a pass
        asks for it several times per employee)."""
        raw = self.values.get("root.email")
        return raw.strip().lower() if isinstance(raw, str) and raw.strip() else None


KNOWN_USER_STATUSES = frozenset({"active", "invited", "deleted"})


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
    def is_status_known(self) -> bool:
        """active, invited or deleted: any other (or no) status is unknown, never written for."""
        return self.status in KNOWN_USER_STATUSES

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


# -- the typed actions of a plan (what a dry run prints and apply executes) ----------------
@dataclass(frozen=True)
class ManagerChange:
    """A manager link to replace: Hibob ids of the previous and the new manager."""

    old: str | None
    new: str | None
    # The account 360Learning links as manager, when read (a migration's adoption): removed
    # even when it belongs to nobody linked (a leaver's deleted account, another connector's).
    old_learning_user_id: str | None = None


@dataclass(frozen=True)
class Action:
    """One change to one employee's 360Learning user; `state` is the snapshot once applied."""

    kind: ClassVar[ActionKind]
    hibob_id: str
    email: str | None
    reason: str
    learning_user_id: str | None = None
    state: AppliedState | None = None
    is_released: bool = False  # a cut-off an admin released: it leaves the breaker's window

    @property
    def fields(self) -> list[str]:
        return []


@dataclass(frozen=True)
class Upsert(Action):
    """Writes attributes, status, groups and links (create, adopt, update, reactivate)."""

    changes: Mapping[str, Any] = field(default_factory=dict)
    activate: bool = False
    add_groups: frozenset[GroupRole] = frozenset()
    remove_groups: frozenset[GroupRole] = frozenset()
    manager: ManagerChange | None = None
    link_external_id: bool = False
    relink_subordinates: tuple[str, ...] = ()  # hibob ids whose manager link to this user
    # 360Learning dropped (a restore drops "being the manager of others")

    @property
    def fields(self) -> list[str]:
        names = sorted(self.changes)
        if self.activate and not isinstance(self, Create):
            names.append("status")
        if self.add_groups or self.remove_groups:
            names.append("groups")
        if self.manager is not None:
            names.append("manager")
        if self.relink_subordinates:
            names.append("subordinates")
        if self.link_external_id:
            names.append("externalId")
        return names


@dataclass(frozen=True)
class Create(Upsert):
    kind: ClassVar[ActionKind] = ActionKind.CREATE


@dataclass(frozen=True)
class Adopt(Upsert):
    """Link an existing user (by email, or one our own interrupted create left half-done)."""

    kind: ClassVar[ActionKind] = ActionKind.ADOPT
    restore: bool = False  # the user may be deleted: re-POST its own mail to restore it first
    restore_mail: str | None = None  # that mail, when it is not the one to write


@dataclass(frozen=True)
class Update(Upsert):
    kind: ClassVar[ActionKind] = ActionKind.UPDATE


@dataclass(frozen=True)
class Reactivate(Upsert):
    """Restore the employee's own deleted account: re-POST its stored mail, then the rest."""

    kind: ClassVar[ActionKind] = ActionKind.REACTIVATE
    restore_mail: str | None = None


@dataclass(frozen=True)
class Deactivate(Action):
    kind: ClassVar[ActionKind] = ActionKind.DEACTIVATE
    is_already_deleted: bool = False  # 360Learning deleted it on its scheduled date: record only

    @property
    def fields(self) -> list[str]:
        return ["status"]


@dataclass(frozen=True)
class Problem:
    """An employee this pass could not or would not write, and why."""

    hibob_id: str
    email: str | None
    reason: str


@dataclass(frozen=True)
class Hold:
    """A cut-off a safety limit kept back, until an admin releases it (by hibob id)."""

    hibob_id: str
    email: str | None
    reason: str
    what: str  # deactivation | scheduled deactivation | membership removal


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    problems: tuple[Problem, ...] = ()
    held: tuple[Hold, ...] = ()  # what a safety limit kept back
    held_reason: str | None = None
    is_held_releasable: bool = True  # False: a bad read, which no release can lift

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter(str(a.kind) for a in self.actions)
        if self.held:
            counts["held"] = len(self.held)
        if self.problems:
            counts["skipped"] = len(self.problems)
        return dict(sorted(counts.items()))

    @property
    def is_empty(self) -> bool:
        return not self.actions and not self.held
