"""Reconcile: one pass — read Hibob (and 360Learning as needed), plan, apply, record.

The only orchestrator: the CLI, the scheduler, the hint worker and `explain` all call it. It
reads and records; every decision is the pure core's (`plan.compute_plan`). The clock is read
once by the caller (`now`). Incremental passes read 360Learning only for employees not linked
yet; full passes list every 360Learning user and repair drift; targeted passes re-read one.

This module holds `run_pass`, `read_and_plan` and `plan_from_read`; what they read is in
`reconcile_hibob` and `reconcile_learning`, what a pass records in `reconcile_results`, its
options and decision settings in `reconcile_settings`. The names other modules use
(`PassResult`, `PassOptions`, `read_employees`, `find_employee`) are importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timedelta

from reconciler.clients.pacer import priority_lane
from reconciler.core.desired import Desired, compute_vanished_labels, local_today, required_fields
from reconciler.core.fingerprint import (
    compute_keys_to_store,
    compute_source_keys,
    compute_unchanged,
)
from reconciler.core.models import Employee, GroupRole, Plan, Problem, SnapshotEntry
from reconciler.core.plan import PlanInput, compute_unknown_share
from reconciler.core.safety import is_cut
from reconciler.core.vocabulary import PassKind, PassOutcome
from reconciler.errors import PassFailed, ReconcilerError
from reconciler.passes.apply import PassHooks, ProgressCallback, apply_plan
from reconciler.passes.context import PassContext, apply_settings
from reconciler.passes.custom_fields import load_custom_fields
from reconciler.passes.reconcile_hibob import (
    _compute_desired,
    _plan_with_confirmed_absences,
    _unseen_twins,
    _withhold_drifted,
)
from reconciler.passes.reconcile_hibob import find_employee as find_employee
from reconciler.passes.reconcile_hibob import read_employees as read_employees
from reconciler.passes.reconcile_learning import (
    _no_progress,
    _read_learning,
    _stored_rows,
    _targeted_rows,
    _with_managers,
)
from reconciler.passes.reconcile_results import PassResult as PassResult
from reconciler.passes.reconcile_results import (
    _applied_counts,
    _finish,
    _record_held,
    _record_skips,
)
from reconciler.passes.reconcile_settings import (
    DECISION_SETTINGS_KEY,
    _previous_settings,
    _retry_quarantined,
    decision_settings,
    settings_fingerprint,
)
from reconciler.passes.reconcile_settings import PassOptions as PassOptions
from reconciler.passes.recovery import confirm_unconfirmed_writes, link_unconfirmed_creates
from reconciler.passes.shadow import finish_cutover, is_cutover_pending, record_shadow_pass

log = logging.getLogger("reconciler.passes.reconcile")
BREAKER_WINDOW = timedelta(hours=1)


def run_pass(
    services: PassContext,
    kind: PassKind,
    *,
    now: datetime,
    dry_run: bool = False,
    employee: str | None = None,
    allow_deactivations: bool = False,
    released: frozenset[str] = frozenset(),
    retry_quarantined: bool | None = None,
    hooks: PassHooks | None = None,
) -> PassResult:
    store, hooks = services.store, hooks or PassHooks()
    started = time.monotonic()
    # Shadow mode: every pass reads both sides in full and writes nothing; the first pass
    # after it (the cut-over) reads in full too, so it applies every open disagreement.
    is_shadow = services.settings.sync.mode == "shadow" and not dry_run
    is_cutover = not (is_shadow or dry_run or kind == PassKind.TARGETED) and is_cutover_pending(
        store
    )
    kind = PassKind.FULL if is_shadow or is_cutover else kind
    options = PassOptions(
        employee, allow_deactivations, released, retry_quarantined, is_shadow or is_cutover
    )
    pass_id = store.start_pass(kind, now, is_dry_run=dry_run)
    observed: list[PlanInput] = []
    try:
        if not (dry_run or is_shadow):
            _close_what_a_crash_left(services, pass_id, now)
        plan = read_and_plan(
            services,
            kind,
            now=now,
            options=options,
            record=not (dry_run or is_shadow),
            progress=hooks.progress,
            observe=observed.append,
        )
        if is_shadow:
            found = record_shadow_pass(services, plan, observed[-1], pass_id, now)
    except ReconcilerError as exc:
        return _finish(
            services,
            PassResult(
                pass_id,
                kind,
                Plan(),
                dry_run,
                outcome=PassOutcome.FAILED,
                error=str(exc),
                exception=exc,
            ),
            now,
            started,
        )
    except KeyboardInterrupt:
        store.finish_pass(
            pass_id,
            now + timedelta(seconds=time.monotonic() - started),
            PassOutcome.INTERRUPTED,
            {},
            "interrupted (Ctrl-C)",
        )
        raise
    result = PassResult(pass_id, kind, plan, dry_run, counts=plan.counts())
    if is_shadow:  # what would have been done, and what disagrees: nothing is written
        result.counts = {f"would_{k}": n for k, n in plan.counts().items()}
        result.counts["disagreements"] = len(found)
        return _finish(services, result, now, started)
    if dry_run:
        result.outcome = PassOutcome.DRY_RUN
        return _finish(services, result, now, started)
    try:
        # A targeted pass (a hint, an admin's one employee) writes ahead of bulk work.
        with priority_lane() if kind == PassKind.TARGETED else nullcontext():
            report = apply_plan(
                plan,
                client=services.learning,
                store=store,
                settings=apply_settings(services.settings, services.limits),
                pass_id=pass_id,
                now=now,
                hooks=hooks,
            )
    except KeyboardInterrupt:  # what was sent is journalled; the next pass does the rest
        store.finish_pass(
            pass_id,
            now + timedelta(seconds=time.monotonic() - started),
            PassOutcome.INTERRUPTED,
            {},
            "interrupted (Ctrl-C)",
        )
        raise
    result.report, result.counts = report, _applied_counts(plan, report)
    if report.pass_error:
        result.outcome, result.error = PassOutcome.FAILED, report.pass_error
    else:
        _record_held(services, plan, pass_id, now, kind)
        _record_skips(services, plan, pass_id, now)
        result.outcome = (
            PassOutcome.ERRORS
            if report.has_failures
            else PassOutcome.HELD
            if plan.held
            else PassOutcome.OK
        )
        result.error = plan.held_reason
        if result.outcome in (PassOutcome.OK, PassOutcome.HELD) and kind != PassKind.TARGETED:
            store.save_service_state({DECISION_SETTINGS_KEY: decision_settings(services.settings)})
        if is_cutover and result.outcome.is_success:
            failed = {h for h, _ in report.failures}
            applied = {a.hibob_id for a in plan.actions} - failed - {h.hibob_id for h in plan.held}
            finish_cutover(store, now, applied, is_done=result.outcome == PassOutcome.OK)
    return _finish(services, result, now, started)


def _close_what_a_crash_left(services: PassContext, pass_id: int, now: datetime) -> None:
    """Link the accounts that unanswered creates made and read back the ones that other
    unanswered writes touched, then mark the dead passes and their pending operations
    interrupted. A failed read leaves them pending, so the next pass looks again."""
    link_unconfirmed_creates(services.store, services.learning, now)
    confirm_unconfirmed_writes(services.store, services.learning)
    if interrupted := services.store.close_interrupted(pass_id, now):
        log.warning(
            "%d operations of an interrupted pass were never confirmed; this pass re-checks them",
            interrupted,
        )


def read_and_plan(
    services: PassContext,
    kind: PassKind,
    *,
    now: datetime,
    options: PassOptions = PassOptions(),
    record: bool = False,
    progress: ProgressCallback | None = None,
    observe: Callable[[PlanInput], None] | None = None,
) -> Plan:
    """Read both sides as the pass kind requires and compute the plan (no 360Learning write).

    `record`: save the emails read (the store's email history), which a dry run does not.
    `progress` hears ("read", done, total) and ("plan", done, total); `observe` the plan's
    input (what was read, shadow mode compares it).
    """
    progress = progress or _no_progress
    progress("read", 0, None)
    is_targeted = kind == PassKind.TARGETED
    fields = required_fields(services.settings)
    stored_keys: dict[str, str] | None = None
    if is_targeted:
        # A targeted pass reads its employee's rows only: its cost does not grow with the
        # company.
        employees, problems = read_employees(services, kind, fields, {}, options)
        snapshot = _targeted_rows(services, employees, problems)
    else:
        # The snapshot is read while the search is in flight (Hibob takes seconds to answer
        # for a large company; the store's rows and the answer's wait overlap).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot") as pool:
            later = pool.submit(_stored_rows, services, kind)
            employees, problems = read_employees(services, kind, fields, {}, options)
            snapshot, stored_keys = later.result()
    previously_cut, previous = None, None
    if kind != PassKind.TARGETED and (previous := _previous_settings(services)) is not None:
        # The first pass under changed settings: whom would the previous ones cut off?
        before = plan_from_read(
            replace(services, settings=previous), kind, employees, problems, snapshot, now=now
        )
        previously_cut = frozenset(a.hibob_id for a in before.actions if is_cut(a)) | {
            h.hibob_id for h in before.held
        }
    return plan_from_read(
        services,
        kind,
        employees,
        problems,
        snapshot,
        now=now,
        options=options,
        record=record,
        progress=progress,
        previously_cut=previously_cut,
        observe=observe,
        may_skip=kind == PassKind.INCREMENTAL and previous is None,
        stored_keys=stored_keys,
    )


def plan_from_read(
    services: PassContext,
    kind: PassKind,
    employees: list[Employee],
    problems: list[Problem],
    snapshot: dict[str, SnapshotEntry],
    *,
    now: datetime,
    options: PassOptions = PassOptions(),
    record: bool = False,
    progress: ProgressCallback | None = None,
    previously_cut: frozenset[str] | None = None,
    observe: Callable[[PlanInput], None] | None = None,
    may_skip: bool = False,
    stored_keys: Mapping[str, str] | None = None,
) -> Plan:
    """The plan under `services.settings` from what Hibob returned (reads 360Learning).
    `previously_cut`: the settings changed; whom the previous ones would cut off.
    `may_skip`: leave out employees whose source key matches the stored one
    (core.fingerprint); the plan is the same. `stored_keys`: those keys, when already read."""
    settings, store = services.settings, services.store
    progress = progress or _no_progress
    fields = required_fields(settings)
    problems = list(problems)
    employees, withheld = _withhold_drifted(services, employees, kind, record)
    problems += withheld
    progress("read", len(employees), len(employees))
    custom = load_custom_fields(
        services.learning, store, settings, refresh=kind == PassKind.FULL, record=record
    )
    problems += [Problem("", None, text) for text in custom.problems]
    keys: dict[str, str] = {}
    unchanged: frozenset[str] = frozenset()
    if kind == PassKind.INCREMENTAL and not withheld:
        today = local_today(now, settings.mapping.timezone)
        fingerprint = settings_fingerprint(settings, custom, services.limits)
        keys = compute_source_keys(employees, fingerprint, today, snapshot)
        if may_skip and keys:
            stored = store.load_source_keys() if stored_keys is None else stored_keys
            unchanged = compute_unchanged(employees, keys, stored, snapshot)
    computed = [e for e in employees if e.hibob_id not in unchanged] if unchanged else employees
    desired = _compute_desired(services, computed, now, custom)
    if kind == PassKind.TARGETED:
        snapshot = _with_managers(services, snapshot, desired)
    else:
        texts = compute_vanished_labels(
            settings, {**desired, **_held_groups(unchanged, snapshot)}, snapshot
        )
        problems += [Problem("", None, text) for text in texts]
    is_full_read = kind != PassKind.TARGETED
    if is_full_read and (
        problem := compute_unknown_share(
            {**desired, **dict.fromkeys(unchanged, _UNCHANGED)}, services.limits
        )
    ):
        raise PassFailed(problem)
    if record:
        emails = {h: d.email for h, d in desired.items() if d.email}
        if unchanged:
            emails.update(
                {e.hibob_id: e.email for e in employees if e.hibob_id in unchanged and e.email}
            )
        store.save_seen_emails(
            {h: m for h, m in emails.items() if m}, now, is_complete=is_full_read
        )
    data = PlanInput(
        desired=desired,
        snapshot=snapshot,
        now=now,
        is_full_read=is_full_read,
        known_emails=(
            {
                **store.load_known_emails(emails={d.email for d in desired.values() if d.email}),
                **_unseen_twins(services, desired, snapshot),
            }
            if not is_full_read
            else {}
        ),
        absent=frozenset(
            h
            for h, e in snapshot.items()
            if e.is_linked and h not in desired and h not in unchanged
        )
        if is_full_read
        else frozenset(),
        read_problem=(
            "Hibob returned no employees: no deactivation from an empty read"
            if is_full_read and not employees and any(e.is_active for e in snapshot.values())
            else None
        ),
        held_ids=store.list_held_ids(),
        recent_deactivations=store.count_deactivations_since(now - BREAKER_WINDOW),
        released=options.released,
        allow_deactivations=options.allow_deactivations,
        previously_cut=previously_cut,
        retry_quarantined=_retry_quarantined(services, kind, options),
        is_migration=options.is_migration and is_full_read,
    )
    as_given = {e.email: str(e.value("root.email")).strip() for e in computed if e.email}
    progress("plan", 0, len(desired))
    data = _read_learning(services, kind, data, as_given, custom, progress)
    plan, data = _plan_with_confirmed_absences(services, data, fields, now, custom)
    if observe is not None:
        observe(data)
    progress("plan", len(desired), len(desired))
    plan = replace(plan, problems=tuple(problems) + plan.problems)
    if record and keys:
        touched = [a.hibob_id for a in plan.actions]
        touched += [p.hibob_id for p in plan.problems] + [h.hibob_id for h in plan.held]
        kept = compute_keys_to_store(keys, desired, touched)
        store.save_source_keys(kept, forget=set(desired) - set(kept))
    return plan


_UNCHANGED = Desired("", None, "active", "unchanged since the last pass")
"""Stands for a skipped employee where only the number of employees counts."""


def _held_groups(
    unchanged: frozenset[str], snapshot: Mapping[str, SnapshotEntry]
) -> dict[str, Desired]:
    """For the vanished-label check: one stand-in per group the skipped employees are in
    (as members the reconciler manages: their desired groups hold these)."""
    found: dict[GroupRole, str] = {}
    for hibob_id in unchanged:
        state = snapshot[hibob_id].state if hibob_id in snapshot else None
        if state is not None:
            for group in state.groups - state.kept_groups:
                found.setdefault(group, hibob_id)
    return {
        f"unchanged:{h}:{g.group_id}:{g.role}": Desired(
            h, None, "active", "", groups=frozenset([g])
        )
        for g, h in found.items()
    }
