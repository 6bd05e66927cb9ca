"""The command line's argument parser: every command, its options and help text, and the handler
each one calls (`cli_handlers`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from reconciler.commands.cli_handlers import (
    cmd_admin_password,
    cmd_check,
    cmd_demo,
    cmd_explain,
    cmd_history,
    cmd_preview,
    cmd_quarantine,
    cmd_release,
    cmd_resync,
    cmd_run,
    cmd_shadow,
    cmd_status,
    cmd_sync,
    parse_since,
)


def _version() -> str:
    try:
        return version("reconciler")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--config and -v, accepted before or after the command (a subcommand's copy only sets
    the value when given, so it never hides the one given before the command)."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="settings file (default: $RECONCILER_CONFIG, else ./settings.toml)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="debug logging",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Keep 360Learning users in step with Hibob.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad settings or usage, 3 held by a safety limit.",
    )
    _common(parser, top=True)
    parser.add_argument(
        "--version",
        action="version",
        version=f"reconciler {_version()}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[..., int], text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=text, description=text)
        _common(child, top=False)
        child.set_defaults(func=func)
        return child

    _add_action_commands(command)
    _add_reading_commands(command)
    text = (
        "what a settings change would do: the decisions that differ between the settings in "
        "force and CANDIDATE over one read; changes nothing (exit 3 if CANDIDATE would be held)"
    )
    preview = sub.add_parser("preview", help=text, description=text)
    preview.add_argument(
        "--config", dest="candidate", metavar="CANDIDATE", required=True, help="candidate settings"
    )
    preview.add_argument("--json", action="store_true", help="the same as a JSON object")
    preview.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    preview.set_defaults(func=cmd_preview)
    return parser


Command = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


def _add_action_commands(command: Command) -> None:
    """Commands that change something (through the running service when there is one)."""
    sync = command(
        "sync", cmd_sync, "one pass now (through the running service if there is one), then exit"
    )
    sync.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    sync.add_argument(
        "--full", action="store_true", help="also compare every 360Learning user and repair drift"
    )
    sync.add_argument("--employee", metavar="ID", help="only this employee (Hibob id or email)")
    sync.add_argument(
        "--allow-deactivations",
        action="store_true",
        help="let this pass deactivate whatever the breaker would hold (prefer "
        "`reconciler release`, which releases exactly the list you saw)",
    )
    resync = command(
        "resync",
        cmd_resync,
        "force a full resync now (through the running service if there is one)",
    )
    resync.add_argument(
        "--no-wait", action="store_true", help="only leave the request for the service; do not wait"
    )
    resync.add_argument(
        "--release-held",
        action="store_true",
        help="also release the held deactivations (the list is shown first; "
        "refused if it changes before the pass)",
    )
    resync.add_argument(
        "--retry-quarantined",
        action="store_true",
        help="also lift every quarantine and reset failure counts first (a "
        "full resync retries quarantined employees in any case; this "
        "gives them a clean slate)",
    )
    release = command(
        "release",
        cmd_release,
        "show the held deactivations, and release "
        "exactly the list shown (by its token or by naming the employees)",
    )
    release.add_argument(
        "ids", nargs="*", metavar="ID", help="release these held employees (Hibob ids)"
    )
    release.add_argument(
        "--list",
        action="store_true",
        help="only show the held list and its token (the default without ID or --token)",
    )
    release.add_argument(
        "--token",
        metavar="T",
        help="release the whole list shown with "
        "this token; refused (exit 2) if the list changed since",
    )
    quarantine = command(
        "quarantine",
        cmd_quarantine,
        "list quarantined employees, or lift quarantine so the next pass retries them",
    )
    quarantine.add_argument(
        "--clear",
        metavar="ID",
        action="append",
        help="lift quarantine for this employee (Hibob id or email; repeatable)",
    )
    quarantine.add_argument("--all", action="store_true", help="lift every quarantine")


def _add_reading_commands(command: Command) -> None:
    """The service, and the commands that read, check or demonstrate."""
    command(
        "run", cmd_run, "the long-running service: scheduled passes, webhooks, health and metrics"
    )
    status = command(
        "status",
        cmd_status,
        "last passes, held deactivations, quarantine, skipped employees, pending hints",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    history = command(
        "history", cmd_history, "the audit trail of actions, with outcomes and reasons"
    )
    history.add_argument(
        "--employee", metavar="ID", help="only this employee (Hibob id or any email it had)"
    )
    history.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_since,
        help="from a date (2026-11-28), a UTC datetime (2026-11-28T09:30) or "
        "a duration ago (90m, 2h, 3d, 1w)",
    )
    history.add_argument("--json", action="store_true", help="a JSON array")
    explain = command(
        "explain",
        cmd_explain,
        "why one employee is (or is not) in 360Learning, and what the next pass would do",
    )
    explain.add_argument("employee", metavar="EMPLOYEE", help="Hibob id or email")
    explain.add_argument("--apply", action="store_true", help="then reconcile this employee now")
    explain.add_argument(
        "--offline", action="store_true", help="read only the database: no credentials, no API call"
    )
    command("check", cmd_check, "validate settings, credentials, scopes and field permissions")
    shadow = command(
        "shadow",
        cmd_shadow,
        "shadow mode: every disagreement between what the reconciler would do and what "
        "360Learning holds, lag apart from misses",
    )
    shadow.add_argument("action", choices=["report"], help="report: the open and closed ones")
    shadow.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_since,
        help="only those seen from a date, a UTC datetime or a duration ago (90m, 2h, 3d, 1w)",
    )
    shadow.add_argument("--json", action="store_true", help="one JSON object")
    demo = command(
        "demo", cmd_demo, "run against the bundled simulators (no credentials, no network)"
    )
    demo.add_argument(
        "--size",
        type=int,
        default=300,
        metavar="N",
        help="employees in the generated company (default 300)",
    )
    demo.add_argument(
        "--keep", metavar="DIR", help="leave the database and a settings file in DIR to explore"
    )
    command(
        "admin-password",
        cmd_admin_password,
        "read the admin page's password (from the terminal, or one line of standard input) and "
        "print the hash to give as RECONCILER_ADMIN__PASSWORD_HASH or the credential "
        "admin_password_hash",
    )
