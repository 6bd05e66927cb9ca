"""Report: renders pass results, status and history rows as plain lines for the terminal.

Called by the CLI, resync, explain and the demo. Pure formatting: reads nothing, decides
nothing, and shows settings by name, never by value.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from reconciler.reconcile import PassResult


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
        hint = (" (release with: reconciler sync --allow-deactivations)"
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
    held = status["held_deactivations"]
    print(f"held deactivations: {len(held)}", file=out)
    for row in held:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']}", file=out)
    quarantined = status["quarantined"]
    print(f"quarantined employees: {len(quarantined)}", file=out)
    for row in quarantined:
        print(f"  {row['employee_id']}  until {row['until']}  {row['reason']}", file=out)


def format_history_row(row: dict[str, Any]) -> str:
    """One journal row: when, pass, who, what, outcome and why."""
    error = f"  {row['error']}" if row.get("error") else ""
    return (f"{row['at']}  pass {row['pass_id']}  {row['employee_id']}  "
            f"{row['email'] or '-'}  {row['action']} [{', '.join(row['fields'])}]  "
            f"{row['outcome']}  {row['reason']}{error}")
