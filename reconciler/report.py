"""Report: renders pass results, status and history rows as plain lines for the terminal.

Called by the CLI, resync, explain and the demo. Pure formatting: reads nothing, decides
nothing, and shows settings by name, never by value.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from reconciler.reconcile import PassResult
from reconciler.requests import compute_held_token


def print_result(result: PassResult, out: TextIO | None = None, *,
                 show_problems: bool = True) -> None:
    out = out or sys.stdout
    plan = result.plan
    label = "dry run" if result.is_dry_run else f"{result.kind} pass {result.pass_id}"
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "nothing to do"
    print(f"{label}: {result.outcome} — {counts}", file=out)
    if result.error:
        print(f"  error: {result.error}", file=out)
    for action in plan.actions:
        fields = ",".join(action.fields) or "-"
        print(f"  {action.hibob_id}  {action.email or '-'}  {action.kind}  [{fields}]  "
              f"{action.reason}", file=out)
    for action in plan.held:
        print(f"  {action.hibob_id}  {action.email or '-'}  deactivate HELD  {action.reason}",
              file=out)
    if plan.held:
        hint = (" (review and release with: reconciler release)"
                if plan.is_held_releasable else "")
        print(f"  held: {plan.held_reason}{hint}", file=out)
    for problem in plan.problems if show_problems else ():
        print(f"  {problem.hibob_id}  {problem.email or '-'}  skipped  {problem.reason}",
              file=out)
    if result.report:
        for hibob_id, error in result.report.failures:
            print(f"  {hibob_id}  failed  {error}", file=out)


def print_status(status: dict[str, Any], out: TextIO) -> None:
    running = "running" if status["service_running"] else "not running"
    print(f"database {status['database']} (service {running})", file=out)
    last = status["last_pass"]
    if last:
        counts = ", ".join(f"{k} {v}" for k, v in last["counts"].items()) or "no changes"
        print(f"last pass #{last['id']} {last['kind']} {last['outcome']} at "
              f"{last['finished_at'] or last['started_at']}: {counts}", file=out)
        if last["error"]:
            print(f"  {last['error']}", file=out)
    else:
        print("no pass yet", file=out)
    print(f"last success: {status['last_success_at'] or 'never'}", file=out)
    if status["next_pass_at"]:
        print(f"next scheduled pass: {status['next_pass_at']} (full resync "
              f"{status['next_full_resync_at'] or 'not scheduled'})", file=out)
    print(f"pending hints: {status['pending_hints']}", file=out)
    for row in status.get("open_requests", []):
        state = f"started {row['started_at']}" if row["started_at"] else "waiting for the service"
        print(f"admin request {row['id']} ({row['kind']}, {row['requested_at']}): {state}",
              file=out)
    held = status["held_deactivations"]
    print(f"held deactivations: {len(held)}" + (" (reconciler release)" if held else ""),
          file=out)
    for row in held:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']}", file=out)
    quarantined = status["quarantined"]
    print(f"quarantined employees: {len(quarantined)}"
          + (" (reconciler quarantine)" if quarantined else ""), file=out)
    for row in quarantined:
        print(f"  {row['employee_id']}  until {row['until']}  {row['reason']}", file=out)
    skipped = status.get("skipped", [])
    print(f"skipped employees: {len(skipped)}", file=out)
    for row in skipped:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']} "
              f"(since {row['since']})", file=out)


def print_held(held: list[dict[str, Any]], out: TextIO) -> None:
    """The held deactivations and the token that releases exactly this list."""
    if not held:
        print("no deactivation is held", file=out)
        return
    print(f"{len(held)} held deactivation(s):", file=out)
    for row in held:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  held {row['held_at']}  "
              f"{row['reason']}", file=out)
    releasable = [row for row in held if row.get("is_releasable", True)]
    if len(releasable) < len(held):
        print(f"{len(held) - len(releasable)} of them are held because the Hibob read could not "
              "be trusted: fix the read, the next pass decides again", file=out)
    if not releasable:
        return
    token = compute_held_token(releasable)
    print(f"release exactly these {len(releasable)}: reconciler release --token {token}",
          file=out)
    print("(or name the employees: reconciler release ID [ID ...])", file=out)


def print_quarantined(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("no employee is quarantined", file=out)
        return
    print(f"{len(rows)} quarantined employee(s):", file=out)
    for row in rows:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['failures']} failures, "
              f"until {row['until']}: {row['reason'] or 'no error recorded'}", file=out)
    print("clear with: reconciler quarantine --clear ID (or --all); the next pass retries them",
          file=out)


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


def format_history_row(row: dict[str, Any]) -> str:
    """One journal row: when, pass, who, what, outcome and why."""
    error = f"  {row['error']}" if row.get("error") else ""
    fields = f" [{', '.join(row['fields'])}]" if row["fields"] else ""
    return (f"{row['at']}  pass {row['pass_id']}  {row['employee_id']}  "
            f"{row['email'] or '-'}  {row['action']}{fields}  "
            f"{row['outcome']}  {row['reason']}{error}")
