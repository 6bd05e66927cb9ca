"""Reconcile, the record of a pass: its result, outcome log line, held deactivations, skips
and counts.

Part of `reconcile`, which calls these once a pass has applied (or failed); they write the
store's pass row, holds and skip reasons, and log each pass's outcome.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.core.models import Plan
from reconciler.core.vocabulary import PassKind, PassOutcome
from reconciler.errors import ReconcilerError
from reconciler.passes.apply import ApplyReport
from reconciler.passes.context import PassContext

log = logging.getLogger("reconciler.passes.reconcile")  # the pass's records keep one logger name


@dataclass
class PassResult:
    pass_id: int
    kind: str
    plan: Plan
    is_dry_run: bool = False
    report: ApplyReport | None = None
    outcome: PassOutcome = PassOutcome.OK
    error: str | None = None
    duration_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    exception: ReconcilerError | None = None
    """What failed the pass: the hint worker retries an ApiError, not an unknown employee."""

    @property
    def exit_code(self) -> int:
        """The outcome's; a dry run whose plan a safety limit would hold exits 3 (§2.1)."""
        if self.outcome == PassOutcome.DRY_RUN and self.plan.held:
            return PassOutcome.HELD.exit_code
        return self.outcome.exit_code


def _finish(services: PassContext, result: PassResult, now: datetime, started: float) -> PassResult:
    """Record the outcome at the pass's finish time (`now` is its start: the decision clock)."""
    result.duration_seconds = time.monotonic() - started
    finished = now + timedelta(seconds=result.duration_seconds)
    services.store.finish_pass(
        result.pass_id, finished, result.outcome, result.counts, result.error
    )
    level = {
        PassOutcome.FAILED: logging.ERROR,
        PassOutcome.HELD: logging.WARNING,
        PassOutcome.ERRORS: logging.WARNING,
    }.get(result.outcome, logging.INFO)
    log.log(
        level,
        "%s pass %s: %s%s",
        result.kind,
        result.pass_id,
        result.outcome,
        f": {result.error}" if result.error else "",
        extra={
            "outcome": str(result.outcome),
            "pass_id": result.pass_id,
            "kind": str(result.kind),
            "counts": result.counts,
        },
    )
    return result


def _record_held(
    services: PassContext, plan: Plan, pass_id: int, now: datetime, kind: PassKind
) -> None:
    store, reason = services.store, plan.held_reason or ""
    previously = store.list_held_ids()
    done = [a.hibob_id for a in plan.actions] + [p.hibob_id for p in plan.problems]
    # A targeted pass says nothing about the other employees' held deactivations.
    store.replace_held(
        pass_id,
        [(a.hibob_id, a.email, f"{reason}; {a.reason}") for a in plan.held],
        now,
        keep_others=kind == PassKind.TARGETED,
        is_releasable=plan.is_held_releasable,
        done=[h for h in done if h not in {a.hibob_id for a in plan.held}],
    )
    for action in plan.held:
        if action.hibob_id in previously:
            continue  # journalled when first held
        journal_id = store.journal_start(
            pass_id, action.hibob_id, action.email, "deactivate", [], f"held: {reason}", now
        )
        store.journal_finish(journal_id, "held")


def _record_skips(services: PassContext, plan: Plan, pass_id: int, now: datetime) -> None:
    """Skip reasons reach history, status and the log once per change, not once per pass."""
    for hibob_id, _, reason in services.store.record_skips(
        pass_id, [(p.hibob_id, p.email, p.reason) for p in plan.problems], now
    ):
        log.warning(
            "employee %s skipped: %s",
            hibob_id,
            reason,
            extra={"employee_id": hibob_id, "outcome": "skipped"},
        )


def _applied_counts(plan: Plan, report: ApplyReport) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (action, outcome), number in report.outcomes.items():
        if outcome == "superseded":  # a later pass decided for this employee (service)
            counts["superseded"] += number
        elif action != "manager":
            counts[action if outcome == "ok" else f"{action}_failed"] += number
    if plan.held:
        counts["held"] = len(plan.held)
    if plan.problems:
        counts["skipped"] = len(plan.problems)
    return dict(sorted(counts.items()))
