"""Reconcile: one pass — read Hibob, compute desired users, plan against the snapshot, apply.

The only orchestrator: the CLI, the scheduler and the hint worker all call `run_pass`. Reads
the clock once (`now` is passed in). Incremental passes touch 360Learning only for employees
not linked yet; full passes list every 360Learning user and repair drift; targeted passes
re-read one employee.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from reconciler.apply import ApplyReport, apply_plan
from reconciler.desired import Desired, compute_desired, required_fields
from reconciler.errors import ReconcilerError
from reconciler.learning import LearningClient
from reconciler.models import Employee, LearningUser, SnapshotEntry
from reconciler.plan import Plan, PlanInput, Problem, compute_plan
from reconciler.scope import compute_in_scope
from reconciler.store import Store, utc_text
from reconciler.wiring import Services, apply_settings, limits

log = logging.getLogger("reconciler.reconcile")
PassKind = Literal["incremental", "full", "targeted"]
MAIL_BATCH = 50


@dataclass
class PassResult:
    pass_id: int
    kind: str
    plan: Plan
    is_dry_run: bool = False
    report: ApplyReport | None = None
    outcome: str = "ok"  # ok | held | errors | failed | dry-run
    error: str | None = None
    duration_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.outcome in ("failed", "errors"):
            return 1
        return 3 if self.outcome == "held" else 0


def run_pass(services: Services, kind: PassKind, *, now: datetime, dry_run: bool = False,
             employee: str | None = None, allow_deactivations: bool = False) -> PassResult:
    store = services.store
    started = time.monotonic()
    pass_id = store.start_pass(kind, now, is_dry_run=dry_run)
    if not dry_run and (interrupted := store.close_interrupted(pass_id, now)):
        log.warning("%d operations of an interrupted pass were never confirmed; this pass "
                    "re-checks them", interrupted)
    try:
        plan = compute_pass_plan(services, kind, now=now, employee=employee,
                                 allow_deactivations=allow_deactivations)
    except ReconcilerError as exc:
        store.finish_pass(pass_id, now, "failed", {}, str(exc))
        log.error("%s pass failed: %s", kind, exc, extra={"outcome": "failed"})
        return PassResult(pass_id, kind, Plan(), dry_run, outcome="failed", error=str(exc),
                          duration_seconds=time.monotonic() - started)
    result = PassResult(pass_id, kind, plan, dry_run, counts=plan.counts())
    if dry_run:
        result.outcome = "dry-run"
    else:
        result.report = apply_plan(plan, client=services.learning, store=store,
                                   settings=apply_settings(services.settings), pass_id=pass_id,
                                   now=now)
        _record_held(store, pass_id, plan, now, is_targeted=kind == "targeted")
        result.outcome = ("errors" if result.report.has_failures
                          else "held" if plan.held else "ok")
        result.counts = _applied_counts(plan, result.report)
    store.finish_pass(pass_id, now, result.outcome, result.counts, plan.held_reason)
    result.duration_seconds = time.monotonic() - started
    log.info("%s pass %s: %s %s", kind, pass_id, result.outcome, result.counts,
             extra={"outcome": result.outcome, "pass_id": pass_id})
    return result


def compute_pass_plan(services: Services, kind: PassKind, *, now: datetime,
                      employee: str | None = None, allow_deactivations: bool = False) -> Plan:
    """Read both sides as the pass kind requires and compute the plan (no writes)."""
    settings, store = services.settings, services.store
    snapshot = store.load_snapshot()
    fields = required_fields(settings)
    read_problem = None
    if kind == "targeted":
        assert employee is not None
        employees, absent = _read_one(services, employee, fields, snapshot)
    else:
        employees = services.hibob.search_employees(fields)
        returned = {e.hibob_id for e in employees}
        absent = {h for h, e in snapshot.items() if e.learning_user_id and h not in returned}
        if not employees and any(e.is_active for e in snapshot.values()):
            read_problem = "Hibob returned no employees: no deactivation from an empty read"
    desired = {e.hibob_id: compute_desired(e, settings, now.date(),
                                           compute_in_scope(settings.scope.groups, e))
               for e in employees}
    desired = _mark_duplicate_emails(desired, snapshot)
    problems: list[Problem] = []
    if kind != "targeted":
        desired, absent, problems = _skip_quarantined(desired, absent, snapshot, now)
    actual = _list_actual(services.learning) if kind == "full" else None
    candidates = _find_candidates(services, desired, snapshot, actual)
    data = PlanInput(desired=desired, snapshot=snapshot, candidates=candidates, actual=actual,
                     absent=frozenset(absent), read_problem=read_problem)
    plan = compute_plan(data, limits(settings), allow_deactivations=allow_deactivations)
    return replace(plan, problems=plan.problems + tuple(problems))


def _read_one(services: Services, identifier: str, fields: list[str],
              snapshot: dict[str, SnapshotEntry]) -> tuple[list[Employee], set[str]]:
    found = services.hibob.get_employee(identifier, fields)
    if found is not None:
        return [found], set()
    wanted = identifier.strip().lower()
    known = [h for h, e in snapshot.items() if h == identifier or (e.email or "") == wanted]
    if not known:
        raise ReconcilerError(f"employee {identifier} is neither in Hibob nor known here")
    return [], set(known)


def _mark_duplicate_emails(desired: dict[str, Desired],
                           snapshot: dict[str, SnapshotEntry]) -> dict[str, Desired]:
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for hibob_id, d in desired.items():
        if d.email:
            owners[d.email].add(hibob_id)
    for hibob_id, entry in snapshot.items():
        if entry.email and entry.learning_user_id and entry.email in owners:
            owners[entry.email].add(hibob_id)
    marked = dict(desired)
    for hibob_id, d in desired.items():
        others = sorted(owners.get(d.email or "", set()) - {hibob_id})
        if others and d.kind in ("active", "inactive"):
            marked[hibob_id] = replace(d, kind="skip",
                                       reason=f"ambiguous: email shared with employee "
                                              f"{', '.join(others)}")
    return marked


def _skip_quarantined(desired: dict[str, Desired], absent: set[str],
                      snapshot: dict[str, SnapshotEntry], now: datetime
                      ) -> tuple[dict[str, Desired], set[str], list[Problem]]:
    current = utc_text(now)
    held = {h for h, e in snapshot.items()
            if e.quarantined_until and e.quarantined_until > current}
    problems = [Problem(h, snapshot[h].email,
                        f"quarantined until {snapshot[h].quarantined_until}: "
                        f"{snapshot[h].last_error}") for h in sorted(held)]
    return ({h: d for h, d in desired.items() if h not in held}, absent - held, problems)


def _list_actual(learning: LearningClient) -> dict[str, LearningUser]:
    return {u.learning_user_id: u for u in learning.list_users()}


def _find_candidates(services: Services, desired: dict[str, Desired],
                     snapshot: dict[str, SnapshotEntry],
                     actual: dict[str, LearningUser] | None) -> dict[str, list[LearningUser]]:
    """360Learning users that might already be an unlinked employee's account."""
    unlinked = {h: d.email for h, d in desired.items() if d.kind == "active" and d.email
                and not (snapshot.get(h) and snapshot[h].learning_user_id
                         and (actual is None or snapshot[h].learning_user_id in actual))}
    if not unlinked:
        return {}
    linked_ids = {e.learning_user_id for e in snapshot.values() if e.learning_user_id}
    if actual is not None:
        users: Iterable[LearningUser] = actual.values()
        by_external = _external_links(services, actual)
    else:
        users = _list_by_mail(services.learning, sorted(set(unlinked.values())))
        by_external = {}
    by_mail: defaultdict[str, list[LearningUser]] = defaultdict(list)
    for user in users:
        if user.mail and user.learning_user_id not in linked_ids:
            by_mail[user.mail].append(user)
    found = {}
    for hibob_id, email in unlinked.items():
        if hibob_id in by_external:
            found[hibob_id] = [by_external[hibob_id]]
        elif by_mail.get(email):
            found[hibob_id] = by_mail[email]
    return found


def _external_links(services: Services, actual: dict[str, LearningUser]
                    ) -> dict[str, LearningUser]:
    platform = services.settings.learning.external_id_platform
    if not platform:
        return {}
    mapping = services.learning.list_external_ids(platform)
    return {value: actual[target] for value, target in mapping.items() if target in actual}


def _list_by_mail(learning: LearningClient, mails: list[str]) -> list[LearningUser]:
    users: list[LearningUser] = []
    for start in range(0, len(mails), MAIL_BATCH):
        users.extend(learning.list_users(mails=mails[start:start + MAIL_BATCH]))
    return users


def _record_held(store: Store, pass_id: int, plan: Plan, now: datetime,
                 is_targeted: bool) -> None:
    reason = plan.held_reason or ""
    # A targeted pass says nothing about the other employees' held deactivations.
    store.replace_held(pass_id, [(a.hibob_id, a.email, f"{reason}; {a.reason}")
                                 for a in plan.held], now, keep_others=is_targeted)
    for action in plan.held:
        journal_id = store.journal_start(pass_id, action.hibob_id, action.email, "deactivate",
                                         [], f"held: {reason}", now)
        store.journal_finish(journal_id, "held")


def _applied_counts(plan: Plan, report: ApplyReport) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (action, outcome), number in report.outcomes.items():
        if action != "manager":
            counts[action if outcome == "ok" else f"{action}_failed"] += number
    if plan.held:
        counts["held"] = len(plan.held)
    if plan.problems:
        counts["skipped"] = len(plan.problems)
    return dict(sorted(counts.items()))
