"""Shadow mode's side of a pass (product §2.4): after a shadow pass planned over a full read
(a migration read: `PlanInput.is_migration`), record the disagreements the core derives from
that plan, and mark the cut-over due; after the cut-over pass, close what it
applied. Writes nothing to 360Learning. Called by `passes.reconcile`; the report's data is
`shadow_report` (the CLI and the admin page render it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from reconciler.clients.learning import LearningClient
from reconciler.config import Settings
from reconciler.core.custom_fields import ResolvedCustomFields, custom_key, held_values
from reconciler.core.inputs import PlanInput
from reconciler.core.models import LearningUser, Plan
from reconciler.core.shadow import Disagreement, compute_disagreements, compute_shadow_report
from reconciler.passes.context import PassContext
from reconciler.store.database import Store

CUTOVER_KEY = "shadow_cutover"  # service_state: "pending" once a shadow pass ran


def record_shadow_pass(
    services: PassContext, plan: Plan, data: PlanInput, pass_id: int, now: datetime
) -> tuple[Disagreement, ...]:
    """Record what this complete shadow pass saw; the next apply-mode pass is the cut-over."""
    found = compute_disagreements(plan, data)
    services.store.record_disagreements(pass_id, found, now)
    services.store.save_service_state({CUTOVER_KEY: "pending"})
    return found


def read_adopted_values(
    learning: LearningClient,
    data: PlanInput,
    custom: ResolvedCustomFields,
    candidates: Mapping[str, LearningUser],
) -> PlanInput:
    """A migration: the managed custom-field values the accounts to adopt hold (the incumbent
    may have written them), so the plan compares them instead of assuming them empty."""
    if not custom.rules or data.actual is None:
        return data
    keys = {custom_key(d) for d in custom.definitions}
    wanted = sorted(
        {
            user.learning_user_id
            for hibob_id, user in candidates.items()
            if not user.is_deleted
            and data.desired[hibob_id].verdict == "active"
            and keys & set(data.desired[hibob_id].attributes)
        }
    )
    actual = dict(data.actual)
    for user_id in wanted:
        values = held_values(learning.list_custom_values(user_id))
        user = actual[user_id]
        actual[user_id] = replace(
            user, attributes={**user.attributes, **{k: values.get(k) for k in keys}}
        )
    return replace(data, actual=actual)


def is_cutover_pending(store: Store) -> bool:
    return store.load_service_state().get(CUTOVER_KEY) == "pending"


def finish_cutover(store: Store, now: datetime, applied: Iterable[str], is_done: bool) -> None:
    """The cut-over pass applied these employees' changes: their disagreements close. Passes
    are normal again once it left nothing held or failed (`is_done`)."""
    store.close_applied_disagreements(now, applied)
    if is_done:
        store.save_service_state({CUTOVER_KEY: None})


def shadow_report(
    store: Store, settings: Settings, now: datetime, since: datetime | None = None
) -> dict[str, Any]:
    """The shadow report's data (`reconciler shadow report --json`, the admin page)."""
    report = compute_shadow_report(
        store.list_disagreements(), now, settings.sync.shadow_lag_minutes, since
    )
    report["mode"] = settings.sync.mode
    return report
