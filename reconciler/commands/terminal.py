"""Terminal: renders pass results, status and history rows as plain lines for the terminal, and
a long pass's progress bars (`TerminalProgress`).

Called by the CLI, resync, explain and the demo. Pure formatting: reads nothing, decides
nothing, and shows settings by name, never by value.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.passes.progress import ProgressSnapshot, describe_progress, format_duration
from reconciler.service.admin_requests import compute_held_token
from reconciler.store.records import HeldDeactivation, JournalRecord, QuarantinedEmployee

if TYPE_CHECKING:  # the pass machinery is imported only by commands that run one
    from reconciler.passes.reconcile import PassResult

PHASE_LABELS = {"read": "read Hibob", "plan": "plan", "apply": "writes"}


def print_result(
    result: PassResult, out: TextIO | None = None, *, show_problems: bool = True
) -> None:
    out = out or sys.stdout
    plan = result.plan
    label = "dry run" if result.is_dry_run else f"{result.kind} pass {result.pass_id}"
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "nothing to do"
    print(f"{label}: {result.outcome} — {counts}", file=out)
    if result.error:
        print(f"  error: {result.error}", file=out)
    for action in plan.actions:
        fields = ",".join(action.fields) or "-"
        print(
            f"  {action.hibob_id}  {action.email or '-'}  {action.kind}  [{fields}]  "
            f"{action.reason}",
            file=out,
        )
    for hold in plan.held:
        print(
            f"  {hold.hibob_id}  {hold.email or '-'}  {hold.what} HELD  {hold.reason}",
            file=out,
        )
    if plan.held:
        hint = " (review and release with: reconciler release)" if plan.is_held_releasable else ""
        print(f"  held: {plan.held_reason}{hint}", file=out)
    for problem in plan.problems if show_problems else ():
        print(f"  {problem.hibob_id}  {problem.email or '-'}  skipped  {problem.reason}", file=out)
    if result.report:
        for hibob_id, error in result.report.failures:
            print(f"  {hibob_id}  failed  {error}", file=out)


def print_status(status: dict[str, Any], out: TextIO) -> None:
    running = "running" if status["service_running"] else "not running"
    print(f"database {status['database']} (service {running})", file=out)
    for row in status.get("running_passes", []):
        print(
            f"pass #{row['id']} {row['kind']} running since {row['started_at']}: "
            f"so far: {_counts_text(row['counts']) or 'nothing written yet'}",
            file=out,
        )
    last = status["last_pass"]
    if last:
        counts = _counts_text(last["counts"]) or "no changes"
        print(
            f"last pass #{last['id']} {last['kind']} {last['outcome']} at "
            f"{last['finished_at'] or last['started_at']}: {counts}",
            file=out,
        )
        if last["error"]:
            print(f"  {last['error']}", file=out)
    else:
        print("no pass yet", file=out)
    print(f"last success: {status['last_success_at'] or 'never'}", file=out)
    if status["next_pass_at"]:
        print(
            f"next scheduled pass: {status['next_pass_at']} (full resync "
            f"{status['next_full_resync_at'] or 'not scheduled'})",
            file=out,
        )
    if in_progress := status.get("pass_in_progress"):
        print(
            f"in progress: {in_progress['pass']}, {describe_progress(in_progress)} "
            f"(as of {in_progress['at']})",
            file=out,
        )
    print(f"pending hints: {status['pending_hints']}", file=out)
    for row in status.get("retrying_hints", []):
        print(
            f"  {row['employee_id']}  retry {row['attempts'] + 1} at {row['next_attempt_at']}"
            f"  {row['last_error']}",
            file=out,
        )
    parked = status.get("parked_hints", [])
    if parked:
        print(f"parked hints: {len(parked)} (until the next full pass)", file=out)
    for row in parked:
        print(
            f"  {row['employee_id']}  parked at {row['parked_at']} after {row['attempts']}"
            f" tries  {row['last_error']}",
            file=out,
        )
    for row in status.get("open_requests", []):
        state = f"started {row['started_at']}" if row["started_at"] else "waiting for the service"
        print(
            f"admin request {row['id']} ({row['kind']}, {row['requested_at']}): {state}", file=out
        )
    held = status["held_deactivations"]
    print(f"held deactivations: {len(held)}" + (" (reconciler release)" if held else ""), file=out)
    for row in held:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']}", file=out)
    quarantined = status["quarantined"]
    print(
        f"quarantined employees: {len(quarantined)}"
        + (" (reconciler quarantine)" if quarantined else ""),
        file=out,
    )
    for row in quarantined:
        print(f"  {row['employee_id']}  until {row['until']}  {row['reason']}", file=out)
    skipped = status.get("skipped", [])
    print(f"skipped employees: {len(skipped)}", file=out)
    for row in skipped:
        print(
            f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']} "
            f"(since {row['since']})",
            file=out,
        )


def print_held(held: list[HeldDeactivation], out: TextIO) -> None:
    """The held deactivations and the token that releases exactly this list."""
    if not held:
        print("no deactivation is held", file=out)
        return
    print(f"{len(held)} held deactivation(s):", file=out)
    for row in held:
        print(
            f"  {row.hibob_id}  {row.email or '-'}  held {row.held_at}  {row.reason}",
            file=out,
        )
    releasable = [row for row in held if row.is_releasable]
    if len(releasable) < len(held):
        print(
            f"{len(held) - len(releasable)} of them are held because the Hibob read could not "
            "be trusted: fix the read, the next pass decides again",
            file=out,
        )
    if not releasable:
        return
    token = compute_held_token(releasable)
    print(f"release exactly these {len(releasable)}: reconciler release --token {token}", file=out)
    print("(or name the employees: reconciler release ID [ID ...])", file=out)


def print_quarantined(rows: list[QuarantinedEmployee], out: TextIO) -> None:
    if not rows:
        print("no employee is quarantined", file=out)
        return
    print(f"{len(rows)} quarantined employee(s):", file=out)
    for row in rows:
        print(
            f"  {row.hibob_id}  {row.email or '-'}  {row.failures} failures, "
            f"until {row.quarantined_until}: {row.last_error or 'no error recorded'}",
            file=out,
        )
    print(
        "clear with: reconciler quarantine --clear ID (or --all); the next pass retries them",
        file=out,
    )


def format_value(value: Any) -> str:
    """A value as people read it: no quotes, brackets or None."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_value(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items()) or "(none)"
    return str(value)


def format_history_row(row: JournalRecord) -> str:
    """One journal row: when, pass, who, what, outcome and why."""
    error = f"  {row.error}" if row.error else ""
    fields = f" [{', '.join(row.fields)}]" if row.fields else ""
    return (
        f"{row.at}  pass {row.pass_id}  {row.hibob_id}  "
        f"{row.email or '-'}  {row.action}{fields}  "
        f"{row.outcome}  {row.reason}{error}"
    )


def describe_interruption(snapshot: ProgressSnapshot) -> str:
    """What a Ctrl-C left: done and left in the apply, or that nothing was written yet."""
    if snapshot.phase != "apply":
        return (
            f"stopped while {PHASE_LABELS.get(snapshot.phase, snapshot.phase)}; nothing was written"
        )
    total = snapshot.total or 0
    return (
        f"about {snapshot.done:,} of {total:,} writes done, "
        f"{max(0, total - snapshot.done):,} left; run the same command again to finish them"
    )


class TerminalProgress:
    """One rich progress bar per phase (read, plan, apply) with done/total, rate and ETA.

    Used by `sync` only when stdout is a terminal. While shown, log lines go through the bar's
    console, so they scroll above it instead of tearing it.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            redirect_stderr=True,
            redirect_stdout=True,
        )
        self._tasks: dict[str, Any] = {}
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (
                sys.__stderr__,
                sys.__stdout__,
            ):
                self._handlers.append((handler, handler.setStream(sys.stderr)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._progress.stop()

    def update(self, snapshot: ProgressSnapshot) -> None:
        task = self._tasks.get(snapshot.phase)
        if task is None:
            task = self._tasks[snapshot.phase] = self._progress.add_task(
                PHASE_LABELS.get(snapshot.phase, snapshot.phase),
                total=snapshot.total,
                rate="",
                eta="",
            )
        rate = f"{snapshot.rate_per_second:.1f}/s" if snapshot.rate_per_second else ""
        eta = (
            f"ETA {format_duration(snapshot.eta_seconds)}"
            if snapshot.eta_seconds is not None
            else ""
        )
        self._progress.update(
            task, completed=snapshot.done, total=snapshot.total, rate=rate, eta=eta
        )


def _counts_text(counts: dict[str, int]) -> str:
    """`create 2, update 1 unconfirmed`: a finished pass's counts, or a running one's so far."""
    return ", ".join(
        f"{k.removesuffix('_unconfirmed')} {v} unconfirmed"
        if k.endswith("_unconfirmed")
        else f"{k} {v}"
        for k, v in counts.items()
    )
