"""Pure: what differs between two plans over the same read (product §2.4, `preview`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.models import Action, Plan, SnapshotEntry, Upsert


@dataclass(frozen=True)
class Difference:
    """One employee decided differently: decisions, fields (old -> new values) and why."""

    hibob_id: str
    email: str | None
    current: str
    candidate: str
    fields: Mapping[str, tuple[Any, Any]]
    reason: str


def compute_differences(
    current: Plan, candidate: Plan, snapshot: Mapping[str, SnapshotEntry]
) -> list[Difference]:
    """Every employee whose decision or written values differ between the plans."""
    now, then = _decisions(current), _decisions(candidate)
    found = []
    for hibob_id in sorted(set(now) | set(then)):
        (was, was_action, _), (will, action, why) = (
            now.get(hibob_id, ("nothing", None, "")),
            then.get(hibob_id, ("nothing", None, "")),
        )
        entry = snapshot.get(hibob_id)
        stored = entry.state.attributes if entry and entry.state else {}
        fields = {
            name: (old, new)
            for name in sorted(_written(was_action) | _written(action))
            if (old := _value(was_action, name, stored)) != (new := _value(action, name, stored))
        }
        if was == will and not fields:
            continue
        either = action or was_action
        email = either.email if either is not None else None
        found.append(
            Difference(
                hibob_id,
                email or (entry.email if entry else None),
                was,
                will,
                fields,
                why or now.get(hibob_id, ("", None, ""))[2],
            )
        )
    return found


def count_differences(differences: list[Difference]) -> dict[str, int]:
    return dict(sorted(Counter(f"{d.current} -> {d.candidate}" for d in differences).items()))


def _decisions(plan: Plan) -> dict[str, tuple[str, Action | None, str]]:
    decided: dict[str, tuple[str, Action | None, str]] = {}
    for problem in plan.problems:
        if problem.hibob_id:
            decided[problem.hibob_id] = ("skipped", None, problem.reason)
    for hold in plan.held:
        decided[hold.hibob_id] = (f"{hold.what} held", None, hold.reason)
    for action in plan.actions:
        decided[action.hibob_id] = (str(action.kind), action, action.reason)
    return decided


def _written(action: Action | None) -> set[str]:
    if isinstance(action, Upsert):
        return set(action.changes)
    return set()


def _value(action: Action | None, name: str, stored: Mapping[str, Any]) -> Any:
    if isinstance(action, Upsert) and name in action.changes:
        return action.changes[name]
    return stored.get(name)
