"""Pure: what a linked account holds and will hold, as the plan reads it.

Link and status checks against the snapshot and 360Learning's read, the state after a pass
(attributes, groups, manager), the full write a fresh account needs, and the attribute
comparison (mail case, 360Learning's instants). Called by the `core.plan*` modules; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from reconciler.core.desired import Desired
from reconciler.core.inputs import Limits, PlanInput
from reconciler.core.models import (
    AppliedState,
    LearningUser,
    ManagerChange,
    Problem,
    SnapshotEntry,
)


def _is_linked(entry: SnapshotEntry | None, data: PlanInput) -> bool:
    if entry is None or entry.learning_user_id is None:
        return False
    # A full pass that no longer sees the linked user: match again by email.
    return data.actual is None or entry.learning_user_id in data.actual


def _unknown_status(entry: SnapshotEntry | None, data: PlanInput) -> str | None:
    """Why nothing may be written for a linked account whose status this read did not tell."""
    if entry is None or data.actual is None:
        return None
    user = data.actual.get(entry.learning_user_id or "")
    return None if user is None or user.is_status_known else _unknown_status_reason(user)


def _unknown_status_reason(user: LearningUser) -> str:
    shown = repr(user.status) if user.status else "no status"
    return (
        f"360Learning user {user.learning_user_id} has {shown}, not active, invited or deleted: "
        "nothing is written for it until its state is known"
    )


def _is_deleted(entry: SnapshotEntry, data: PlanInput) -> bool:
    if data.actual is not None:
        user = data.actual.get(entry.learning_user_id or "")
        return user is None or user.is_deleted
    if entry.state is None:
        return False
    return not entry.is_active or _scheduled_date_passed(entry.state, data.now)


def _is_own_schedule(entry: SnapshotEntry, wanted: Desired, data: PlanInput) -> bool:
    """Deleted by its own toBeDeactivatedAt while Hibob still schedules the termination."""
    assert entry.state is not None
    return _scheduled_date_passed(entry.state, data.now) and wanted.is_leaving


def _scheduled_date_passed(state: AppliedState, now: datetime) -> bool:
    scheduled = _parse_instant(state.attributes.get("toBeDeactivatedAt"))
    return scheduled is not None and scheduled <= now


def _has_external_id(entry: SnapshotEntry, data: PlanInput) -> bool:
    if data.external_ids is not None:
        return data.external_ids.get(entry.hibob_id) == entry.learning_user_id
    return entry.state is not None and entry.state.is_external_id_linked


def _learning_id(hibob_id: str, data: PlanInput) -> str | None:
    entry = data.snapshot.get(hibob_id)
    return entry.learning_user_id if entry else None


def _subordinates(hibob_id: str, data: PlanInput, live: set[str]) -> tuple[str, ...]:
    return tuple(
        sorted(
            h
            for h, e in data.snapshot.items()
            if e.state is not None and e.state.manager == hibob_id and h in live and e.is_linked
        )
    )


def _state_after(wanted: Desired, entry: SnapshotEntry | None, live: set[str]) -> AppliedState:
    """The snapshot state after applying `wanted`: unknown parts keep what was applied."""
    before = entry.state if entry and entry.state else None
    attributes = {**(before.attributes if before else {}), **wanted.attributes}
    groups = (
        wanted.groups if wanted.groups is not None else (before.groups if before else frozenset())
    )
    manager = before.manager if before else None
    if wanted.is_manager_known:
        target = wanted.manager_hibob_id
        if target == wanted.hibob_id:
            target = None
        # Link only a manager whose account is active after this pass (360Learning refuses a
        # deleted manager); a link made before the manager left stays, so nothing cascades.
        if target is not None and target not in live and target != manager:
            target = None
        manager = target
    return AppliedState(
        is_active=True,
        attributes=attributes,
        groups=frozenset(groups),
        manager=manager,
        kept_groups=before.kept_groups if before else frozenset(),
        is_external_id_linked=before.is_external_id_linked if before else False,
    )


def _full_write(state: AppliedState, limits: Limits) -> dict[str, Any]:
    """What an account that holds nothing of ours yet needs (created, finished or restored):
    every attribute, activation, every group, its manager link and the external-id mapping."""
    return {
        "changes": _present(state.attributes),
        "activate": limits.activate_users,
        "add_groups": state.groups,
        "manager": _initial_manager(state),
        "link_external_id": limits.is_external_id_enabled,
    }


def _initial_manager(state: AppliedState) -> ManagerChange | None:
    return ManagerChange(None, state.manager) if state.manager else None


def _fresh(state: AppliedState, live: set[str]) -> AppliedState:
    """The state of an account that holds no links yet (new, adopted or restored): a link to a
    manager who is not active would be refused, so it waits for the manager's return."""
    return state if state.manager in live or state.manager is None else replace(state, manager=None)


def _quarantine_problem(entry: SnapshotEntry) -> Problem:
    until = entry.quarantined_until.isoformat() if entry.quarantined_until else "?"
    return Problem(entry.hibob_id, entry.email, f"quarantined until {until}: {entry.last_error}")


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _changed(wanted: Mapping[str, Any], seen: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if _norm(k, v) != _norm(k, seen.get(k))}


def _norm(key: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if key == "mail":
        return str(value).lower()
    if key == "toBeDeactivatedAt":
        instant = _parse_instant(value)  # 360Learning may add or drop milliseconds
        return instant.replace(second=0, microsecond=0) if instant else value
    return value


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
