"""Reconcile: one pass — read Hibob (and 360Learning as needed), plan, apply, record.

The only orchestrator: the CLI, the scheduler, the hint worker and `explain` all call it. It
reads and records; every decision is the pure core's (`plan.compute_plan`). The clock is read
once by the caller (`now`). Incremental passes read 360Learning only for employees not linked
yet; full passes list every 360Learning user and repair drift; targeted passes re-read one.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from reconciler.clients.pacer import priority_lane
from reconciler.config import Settings
from reconciler.core.custom_fields import ResolvedCustomFields, with_custom_values
from reconciler.core.desired import (
    Desired,
    compute_desired,
    compute_vanished_labels,
    local_today,
    required_fields,
)
from reconciler.core.drift import (
    compute_fill,
    compute_withheld_fields,
    describe_withheld,
    rule_fields,
    without_fields,
)
from reconciler.core.fingerprint import (
    compute_keys_to_store,
    compute_settings_fingerprint,
    compute_source_keys,
    compute_unchanged,
)
from reconciler.core.models import (
    Employee,
    GroupRole,
    LearningUser,
    Plan,
    Problem,
    SnapshotEntry,
    Update,
)
from reconciler.core.plan import (
    Absence,
    ActualLinks,
    Limits,
    PlanInput,
    compute_absence_checks,
    compute_adoption_candidates,
    compute_mail_lookups,
    compute_plan,
    compute_unknown_share,
)
from reconciler.core.safety import is_cut
from reconciler.core.scope import compute_in_scope
from reconciler.core.vocabulary import PassKind, PassOutcome
from reconciler.errors import ApiAuthFailed, PassFailed, ReconcilerError
from reconciler.passes.apply import ApplyReport, PassHooks, ProgressCallback, apply_plan
from reconciler.passes.context import PassContext, apply_settings, limits
from reconciler.passes.custom_fields import load_custom_fields, read_held_values
from reconciler.passes.recovery import confirm_unconfirmed_writes, link_unconfirmed_creates
from reconciler.passes.shadow import (
    finish_cutover,
    is_cutover_pending,
    read_adopted_values,
    record_shadow_pass,
)

log = logging.getLogger("reconciler.passes.reconcile")
NO_CUSTOM_FIELDS = ResolvedCustomFields()
BREAKER_WINDOW = timedelta(hours=1)
DECISION_SETTINGS_KEY = "decision_settings"  # service_state: those of the last successful pass
ROLES_READ_ONE_BY_ONE = 20
"""Up to this many adoption candidates, one roles read each; above, group memberships."""
LIST_EVERYONE_ABOVE = 1000
"""More unlinked emails to look up than this: list every 360Learning user instead."""
FIELD_FILL_KEY = "field_fill"  # service_state: share of employees with each rule field filled
WITHHELD_KEY = "withheld_fields"  # service_state: the fields the last full read withheld


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


@dataclass(frozen=True)
class PassOptions:
    """What an admin or the trigger asks of a pass, beyond its kind."""

    employee: str | None = None  # targeted: a Hibob id or any email the employee has had
    allow_deactivations: bool = False
    released: frozenset[str] = frozenset()  # held deactivations an admin released
    retry_quarantined: bool | None = None  # None: full passes and after a failed pass
    is_migration: bool = False  # shadow mode and its cut-over (PlanInput.is_migration)


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
    # A targeted pass reads its employee's rows only: its cost does not grow with the company.
    snapshot = {} if is_targeted else services.store.load_snapshot()
    fields = required_fields(services.settings)
    employees, problems = read_employees(services, kind, fields, snapshot, options)
    if is_targeted:
        snapshot = _targeted_rows(services, employees, problems)
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
    )


def settings_fingerprint(
    settings: Settings,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
    core_limits: Limits | None = None,
) -> str:
    """What the source keys hold of the settings: the decision settings (the held-change
    check's notion, which any decision-relevant setting joins), the plan's other knobs and
    the custom fields as resolved in 360Learning (ids, types, choices)."""
    learning = settings.learning
    return compute_settings_fingerprint(
        decision_settings(settings),
        repr(core_limits if core_limits is not None else limits(settings)),
        f"{learning.default_group_id}\0{learning.default_role}",
        json.dumps(asdict(custom), sort_keys=True, default=_canonical),
    )


def _canonical(value: object) -> object:
    """Sets in a stable order (their repr follows string hashing, which varies by process)."""
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    return str(value)


def decision_settings(settings: Settings) -> str:
    """The settings a decision depends on (scope, mapping, sync policies), as stable JSON."""
    policies = ("prehire", "prehire_days_before", "out_of_scope")
    return json.dumps(
        {
            "scope": settings.scope.model_dump(mode="json", by_alias=True),
            "mapping": settings.mapping.model_dump(mode="json", by_alias=True),
            "sync": {name: getattr(settings.sync, name) for name in policies},
        },
        sort_keys=True,
    )


def _previous_settings(services: PassContext) -> Settings | None:
    """The decision settings of the last successful pass, when they differ from these."""
    raw = services.store.load_service_state().get(DECISION_SETTINGS_KEY)
    settings = services.settings
    if not raw or raw == decision_settings(settings):
        return None
    try:
        old = json.loads(raw)
        return settings.model_copy(
            update={
                "scope": type(settings.scope).model_validate(old["scope"]),
                "mapping": type(settings.mapping).model_validate(old["mapping"]),
                "sync": settings.sync.model_copy(update=old["sync"]),
            }
        )
    except (ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
        log.warning("the stored settings of the last pass are unreadable: nothing held for them")
        return None


def read_employees(
    services: PassContext,
    kind: PassKind,
    fields: list[str],
    snapshot: dict[str, SnapshotEntry],
    options: PassOptions = PassOptions(),
) -> tuple[list[Employee], list[Problem]]:
    """What Hibob holds for the pass: everyone (one search) or the targeted employee."""
    problems: list[Problem] = []
    if kind == PassKind.TARGETED:
        assert options.employee is not None
        employees, problems = _read_one(services, options.employee, fields, snapshot)
    else:
        employees = services.hibob.search_employees(fields)
        problems = [
            Problem(
                "",
                None,
                "Hibob returned an employee without root.id (check the "
                "permission group's root category): not written",
            )
            for e in employees
            if not e.hibob_id
        ]
        employees = [e for e in employees if e.hibob_id]
    return employees, problems


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
) -> Plan:
    """The plan under `services.settings` from what Hibob returned (reads 360Learning).
    `previously_cut`: the settings changed; whom the previous ones would cut off.
    `may_skip`: leave out employees whose source key matches the stored one
    (core.fingerprint); the plan is the same."""
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
            unchanged = compute_unchanged(employees, keys, store.load_source_keys(), snapshot)
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


def _withhold_drifted(
    services: PassContext, employees: list[Employee], kind: PassKind, record: bool
) -> tuple[list[Employee], list[Problem]]:
    """Field visibility drift: fields the rules use that most employees had and few have now
    are unknown for this pass (targeted passes reuse the last full read's verdict)."""
    store, fields = services.store, rule_fields(services.settings)
    state = store.load_service_state()
    before: dict[str, float] = json.loads(state.get(FIELD_FILL_KEY) or "{}")
    if kind == PassKind.TARGETED:
        names = [f for f in json.loads(state.get(WITHHELD_KEY) or "[]") if f in fields]
        return [without_fields(e, names) for e in employees], []
    fill = compute_fill(employees, fields)
    withheld = compute_withheld_fields(before, fill, len(employees))
    if record:  # a withheld field keeps the share it had when it was last seen
        kept = {**fill, **{f: before[f] for f in withheld}}
        store.save_service_state(
            {FIELD_FILL_KEY: json.dumps(kept), WITHHELD_KEY: json.dumps(sorted(withheld))}
        )
    if not withheld:
        return employees, []
    for field_id, (was, now) in withheld.items():
        log.warning("%s", describe_withheld(field_id, was, now))
    return [without_fields(e, withheld) for e in employees], [
        Problem("", None, describe_withheld(f, was, now)) for f, (was, now) in withheld.items()
    ]


def _unseen_twins(
    services: PassContext, desired: Mapping[str, Desired], snapshot: Mapping[str, SnapshotEntry]
) -> dict[str, str]:
    """Other employees holding the email of someone a targeted pass may create or adopt: the
    store only knows the emails full searches saw, so Hibob is searched by that email (its
    search filters by email). Their emails make the plan treat the email as ambiguous."""
    wanted = {
        d.email: h
        for h, d in desired.items()
        if d.email and d.verdict == "active" and not (h in snapshot and snapshot[h].is_linked)
    }
    if not wanted:
        return {}
    found = services.hibob.search_employees(["root.email"], emails=sorted(wanted))
    return {
        e.hibob_id: e.email
        for e in found
        if e.hibob_id and e.email and e.email in wanted and wanted[e.email] != e.hibob_id
    }


def _compute_desired(
    services: PassContext,
    employees: list[Employee],
    now: datetime,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
) -> dict[str, Desired]:
    groups, settings = services.settings.scope.groups, services.settings
    read: dict[str, Employee] = {}
    twins: set[str] = set()
    for employee in employees:
        if read.setdefault(employee.hibob_id, employee) != employee:
            twins.add(employee.hibob_id)
    desired = {
        h: with_custom_values(
            compute_desired(e, settings, now, compute_in_scope(groups, e)), e, custom
        )
        for h, e in read.items()
    }
    for hibob_id in twins:  # which record is right is unknowable: write neither
        desired[hibob_id] = replace(
            desired[hibob_id],
            verdict="skip",
            reason="Hibob returned two different records with this id",
        )
    return desired


def _retry_quarantined(services: PassContext, kind: PassKind, options: PassOptions) -> bool:
    if options.retry_quarantined is not None:
        return options.retry_quarantined
    if kind == PassKind.FULL:
        return True
    previous = services.store.list_passes(2, include_dry_runs=False)
    # The first pass after a failed one (credentials fixed?) retries everyone.
    return len(previous) > 1 and previous[1].outcome == PassOutcome.FAILED


def _read_learning(
    services: PassContext,
    kind: PassKind,
    data: PlanInput,
    as_given: dict[str, str],
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
    progress: ProgressCallback | None = None,
) -> PlanInput:
    """What 360Learning holds for this pass: everything (full) or the unlinked emails.

    Emails are looked up as Hibob gives them and lower-cased, then compared locally: whether
    360Learning's `mail` filter ignores case is undocumented.
    """
    learning, platform = services.learning, services.settings.learning.external_id_platform
    if kind == PassKind.FULL:
        actual = {u.learning_user_id: u for u in learning.list_users_with_deleted()}
        external = (
            {h: uid for h, uid in learning.list_external_ids(platform).items()}
            if platform
            else None
        )
        data = replace(data, actual=actual, external_ids=external)
        data = replace(data, actual_links=_read_restored_links(services, data))
    elif kind == PassKind.TARGETED and (linked := _linked_users(data)):
        # The targeted employee's own account, read: drift that `explain` shows is repaired.
        actual = {
            user.learning_user_id: user
            for user_id in linked
            if (user := learning.get_user(user_id)) is not None
        }
        data = replace(data, actual=actual)
    else:
        mails = compute_mail_lookups(data)
        by_mail: defaultdict[str, list[LearningUser]] = defaultdict(list)
        forms = sorted({*mails, *(as_given.get(m, m) for m in mails)})
        if forms:
            # Many lookups (a first sync, a migration): one listing of everyone costs fewer
            # calls than 50 mails per filtered call; users are matched locally either way.
            every = len(forms) > LIST_EVERYONE_ABOVE
            wanted = set(mails)
            for user in learning.list_users_with_deleted(mails=None if every else forms):
                if user.mail and (not every or user.mail in wanted):
                    by_mail[user.mail].append(user)
        data = replace(data, users_by_mail=dict(by_mail))
    if kind == PassKind.TARGETED:  # who holds the accounts this employee might adopt
        data = replace(data, snapshot=_with_account_holders(services, data))
    data = read_held_values(learning, data, custom, progress or _no_progress)  # drift
    candidates = compute_adoption_candidates(data)
    roles = _candidate_roles(services, data, candidates)
    if data.is_migration:  # whether the incumbent linked each adopted account's manager
        managed = {
            c.learning_user_id
            for h, c in candidates.items()
            if data.desired[h].verdict == "active" and data.desired[h].manager_hibob_id
        }
        links = {
            uid: ActualLinks(roles=roles[uid], managers=frozenset(learning.list_managers(uid)))
            for uid in sorted(managed - set(data.actual_links))
        }
        data = replace(data, actual_links={**data.actual_links, **links})
        data = read_adopted_values(learning, data, custom, candidates)
    return replace(data, candidate_roles=roles)


def _candidate_roles(
    services: PassContext, data: PlanInput, candidates: Mapping[str, LearningUser]
) -> dict[str, frozenset[GroupRole]]:
    """The roles of each adoption candidate: whether it is the owner (never adopted) and what
    an adopted admin keeps. A few candidates are read one by one; many (the migration case)
    from the memberships of the platform group, where the owner and the admins are, and of
    the groups the rules would put them in, so only the platform group's admins (anyone with
    a role there other than learner) still cost a roles read each (product §4)."""
    learning = services.learning
    users = sorted({c.learning_user_id for c in candidates.values()})
    if len(users) <= ROLES_READ_ONE_BY_ONE:
        return {u: frozenset(learning.list_user_roles(u)) for u in users}
    try:
        platform = learning.find_platform_group_id()
        groups = {platform} | {
            g.group_id for h in candidates for g in (data.desired[h].groups or ())
        }
        found: dict[str, set[GroupRole]] = {u: set() for u in users}
        for group_id in sorted(groups):
            for user_id, role in learning.list_group_roles(group_id):
                if user_id in found:
                    found[user_id].add(GroupRole(group_id, role))
    except ApiAuthFailed as exc:
        if exc.status != 403:
            raise
        log.warning("no groups:read scope: one roles read per adoption candidate")
        return {u: frozenset(learning.list_user_roles(u)) for u in users}
    for user_id, roles in found.items():
        here = {r.role for r in roles if r.group_id == platform}
        if here - {"learner"} and "owner" not in here:  # an admin keeps every role: read all
            found[user_id] = set(learning.list_user_roles(user_id))
    return {u: frozenset(r) for u, r in found.items()}


def _targeted_rows(
    services: PassContext, employees: list[Employee], problems: list[Problem]
) -> dict[str, SnapshotEntry]:
    """The snapshot rows a targeted pass decides from: its employee's, whoever else holds
    that email, the employees it manages, and its applied manager's."""
    ids = {e.hibob_id for e in employees} | {p.hibob_id for p in problems if p.hibob_id}
    rows = services.store.load_entries(
        ids, emails={e.email for e in employees if e.email}, managed_by=ids
    )
    managers = {
        e.state.manager for h, e in rows.items() if h in ids and e.state and e.state.manager
    }
    return {**services.store.load_entries(managers - set(rows)), **rows}


def _with_managers(
    services: PassContext,
    snapshot: dict[str, SnapshotEntry],
    desired: Mapping[str, Desired],
) -> dict[str, SnapshotEntry]:
    """Add the rows of the managers Hibob names for the targeted employee."""
    wanted = {d.manager_hibob_id for d in desired.values() if d.manager_hibob_id} - set(snapshot)
    return {**snapshot, **services.store.load_entries(wanted)} if wanted else snapshot


def _with_account_holders(services: PassContext, data: PlanInput) -> dict[str, SnapshotEntry]:
    """Add the rows of the employees linked to the 360Learning users a targeted pass read."""
    ids = {u.learning_user_id for users in data.users_by_mail.values() for u in users}
    ids |= set(data.actual or {})
    known = {e.learning_user_id for e in data.snapshot.values()}
    extra = services.store.load_entries(learning_user_ids=ids - known) if ids - known else {}
    return {**extra, **data.snapshot}


def _meets_a_breaker(plan: Plan) -> bool:
    """Whether the plan holds or lets through a cut-off or a membership removal."""
    return bool(plan.held) or any(
        is_cut(a) or (isinstance(a, Update) and a.remove_groups) for a in plan.actions
    )


def _linked_users(data: PlanInput) -> list[str]:
    """The 360Learning accounts of the employees a targeted pass read, when all are linked."""
    entries = [data.snapshot.get(h) for h in data.desired]
    if not entries or any(e is None or not e.learning_user_id or e.state is None for e in entries):
        return []
    return [e.learning_user_id for e in entries if e is not None and e.learning_user_id]


def _read_restored_links(services: PassContext, data: PlanInput) -> dict[str, ActualLinks]:
    """Roles, managers and subordinates of linked users that were ever restored.

    A restore drops groups, roles and "being the manager of others" (360Learning help), by
    hand or by us, so only those users are likely to have lost links; reading every user's
    links would cost three reads per user each night.
    """
    assert data.actual is not None
    learning, links = services.learning, {}
    for entry in data.snapshot.values():
        user = data.actual.get(entry.learning_user_id or "")
        if user is None or user.is_deleted or not user.was_ever_restored or not entry.is_active:
            continue
        uid = user.learning_user_id
        links[uid] = ActualLinks(
            roles=frozenset(learning.list_user_roles(uid)),
            managers=frozenset(learning.list_managers(uid)),
            subordinates=frozenset(learning.list_subordinates(uid)),
        )
    return links


def _plan_with_confirmed_absences(
    services: PassContext,
    data: PlanInput,
    fields: list[str],
    now: datetime,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
) -> tuple[Plan, PlanInput]:
    """Plan; confirm each absence the safety limits would let through by a read by id."""
    plan = compute_plan(data, services.limits)
    if not data.is_full_read and _meets_a_breaker(plan):
        # A targeted pass holds some rows only: the breaker counts everyone, in one query.
        data = replace(data, managed_counts=services.store.count_managed_both())
        plan = compute_plan(data, services.limits)
    checks = compute_absence_checks(plan, data)
    if not checks:
        return plan, data
    absence: dict[str, Absence] = dict(data.absence)
    present: list[Employee] = []
    for hibob_id in checks:
        try:
            found = services.hibob.get_employee(hibob_id, fields)
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            absence[hibob_id] = "unknown"  # "no permission to this employee": not absent
            continue
        if found is None:
            absence[hibob_id] = "confirmed"
        else:
            present.append(found)
    desired = {**data.desired, **_compute_desired(services, present, now, custom)}
    if present:
        log.warning(
            "Hibob's search did not return %d employees that a read by id returns: "
            "the search was incomplete",
            len(present),
        )
    data = replace(
        data,
        desired=desired,
        absence=absence,
        absent=data.absent - {e.hibob_id for e in present},
        search_incomplete=frozenset(e.hibob_id for e in present),
    )
    return compute_plan(data, services.limits), data


def find_employee(
    services: PassContext, identifier: str, fields: list[str]
) -> tuple[Employee | None, str | None, str | None]:
    """(the employee as Hibob returns it, its Hibob id, a note) for a Hibob id or any email
    the employee has had. An email Hibob does not know is resolved through the emails the
    store has seen; the note then says who last held it."""
    wanted, note = identifier.strip(), None
    if "@" in wanted:
        found = services.hibob.get_employee(wanted.lower(), fields)
        if found is not None:
            return found, found.hibob_id, None
        holders = services.store.find_employees_by_email(wanted)
        if not holders:
            return (
                None,
                None,
                (
                    f"{wanted}: no Hibob employee has this email, and no "
                    "employee known here ever had it"
                ),
            )
        wanted = holders[0]
        note = (
            f"{identifier.strip()} is not a current Hibob email; it was last held by "
            f"employee {wanted}"
        )
    return services.hibob.get_employee(wanted, fields), wanted, note


def _read_one(
    services: PassContext, identifier: str, fields: list[str], snapshot: dict[str, SnapshotEntry]
) -> tuple[list[Employee], list[Problem]]:
    """One employee by Hibob id or by any email it has had; never concludes absence."""
    found, hibob_id, note = find_employee(services, identifier, fields)
    if note:
        log.info("%s", note, extra={"employee_id": hibob_id})
    if found is not None:
        return [found], []
    if hibob_id is None:
        raise ReconcilerError(note or f"{identifier}: unknown employee")
    entry = snapshot.get(hibob_id) or services.store.get_entry(hibob_id)
    if entry is None:
        raise ReconcilerError(f"employee {hibob_id} is neither in Hibob nor known here")
    return [], [
        Problem(
            hibob_id,
            entry.email,
            (f"{note}; " if note else "") + "a read by id finds nobody; a targeted "
            "pass never concludes absence: the next full search decides",
        )
    ]


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


def _no_progress(phase: str, done: int, total: int | None) -> None:
    pass


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
