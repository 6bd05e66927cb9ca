"""What the benchmark scenarios share: the fixed date and seed, and seeding a linked population."""

from __future__ import annotations

import datetime as dt

from reconciler.commands.wiring import build_pass_context
from reconciler.passes.context import PassContext
from reconciler.passes.reconcile import read_and_plan
from reconciler.sandbox.learning import LearningSimulator

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
SEED = 11

__all__ = ["NOW", "SEED", "TODAY", "build_pass_context", "seed_linked_population"]


def seed_linked_population(services: PassContext, learning: LearningSimulator) -> int:
    """Make both sides look as after a first sync, without sending 100,000 creates."""
    plan = read_and_plan(services, "incremental", now=NOW)
    for action in plan.actions:
        attributes = {k: v for k, v in action.changes.items() if v is not None}
        user_id = learning.seed_user(attributes.pop("mail"), **attributes)
        services.store.save_applied(
            action.hibob_id,
            learning_user_id=user_id,
            email=action.email,
            state=action.state,
            at=NOW,
        )
    return len(plan.actions)
