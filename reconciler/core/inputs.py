"""What the pure core decides from: the settings' limits and everything a pass read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from reconciler.core.desired import Desired
from reconciler.core.models import GroupRole, LearningUser, SnapshotEntry

Absence = Literal["confirmed", "unknown"]


@dataclass(frozen=True)
class Limits:
    out_of_scope: str = "deactivate"
    activate_users: bool = True
    max_deactivations: int = 25
    max_deactivation_ratio: float = 0.05
    max_membership_removals: int = 25
    deactivation_ratio_min_count: int = 3  # the share applies only above this many
    max_unknown_ratio: float = 0.1
    is_external_id_enabled: bool = True


@dataclass(frozen=True)
class ActualLinks:
    """What 360Learning holds for a user's links (read in full passes for restored users)."""

    roles: frozenset[GroupRole] = frozenset()
    managers: frozenset[str] = frozenset()  # learning user ids
    subordinates: frozenset[str] = frozenset()  # learning user ids


@dataclass(frozen=True)
class PlanInput:
    """Everything a pass read. Targeted passes read one employee; the rest is the store's."""

    desired: Mapping[str, Desired]  # every employee this pass read, by hibob id
    snapshot: Mapping[str, SnapshotEntry]
    now: datetime
    is_full_read: bool = True  # the whole population was searched (not one employee)
    known_emails: Mapping[str, str] = field(default_factory=dict)  # hibob id -> last-read email
    users_by_mail: Mapping[str, Sequence[LearningUser]] = field(default_factory=dict)
    candidate_roles: Mapping[str, frozenset[GroupRole]] = field(default_factory=dict)
    actual: Mapping[str, LearningUser] | None = None  # full pass: every 360Learning user by id
    external_ids: Mapping[str, str] | None = None  # full pass: hibob id -> learning user id
    actual_links: Mapping[str, ActualLinks] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()  # linked employees the search did not return
    absence: Mapping[str, Absence] = field(default_factory=dict)  # what a read by id said
    search_incomplete: frozenset[str] = frozenset()  # missing from the search, read by id
    read_problem: str | None = None  # why this read can't be trusted to deactivate anyone
    held_ids: frozenset[str] = frozenset()  # held earlier: stay held until released
    recent_deactivations: int = 0  # applied within the rolling window, before this pass
    released: frozenset[str] = frozenset()  # held deactivations an admin released
    allow_deactivations: bool = False  # release everything the breaker would hold
    # Settings changed since the last successful pass: whom the previous settings would cut
    # off over this same read (None: unchanged, or a first run). Other cuts are held.
    previously_cut: frozenset[str] | None = None
    retry_quarantined: bool = False
    # Shadow mode and its cut-over (a full read): taking over another connector's accounts. A
    # leaver's (or out-of-scope person's) unlinked live account holding their email is
    # deactivated; an account the external-id mapping names is the employee's even under
    # another mail; an adopted account's managers (`actual_links`) are compared, not assumed.
    is_migration: bool = False
    # (managed active users, managed memberships): the breaker's denominators, counted by the
    # store when `snapshot` holds only the rows a targeted pass read (None: count `snapshot`).
    managed_counts: tuple[int, int] | None = None
