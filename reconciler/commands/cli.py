"""Command line: thin commands that load settings, build objects and call one function each.

Every ReconcilerError becomes one line on stderr and its exit code (0 ok, 1 failed, 2 bad
settings or usage, 3 held by a safety limit); never a traceback for an expected failure.
Actions (sync, resync, release, quarantine --clear, explain --apply) go through `admin`, which
asks the running service when there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from reconciler.commands.admin import request_action, run_watched
from reconciler.commands.logs import configure_logging
from reconciler.commands.terminal import (
    format_history_row,
    print_held,
    print_quarantined,
    print_result,
)
from reconciler.commands.wiring import build_pass_context
from reconciler.config import Settings, load_settings, settings_file_path
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ApiError, ConfigError, ReconcilerError
from reconciler.passes.context import PassContext, now_utc
from reconciler.store.database import Store, utc_text

DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    if args.dry_run:
        kind = (
            PassKind.TARGETED
            if args.employee
            else PassKind.FULL
            if args.full
            else PassKind.INCREMENTAL
        )
        result = run_watched(
            args.build(settings), kind, now=now_utc(), dry_run=True, employee=args.employee
        )
        print_result(result)
        return result.exit_code
    if args.employee:
        return _act(args, settings, "targeted", {"employee": args.employee})
    return _act(
        args,
        settings,
        "sync",
        {
            "pass_kind": PassKind.FULL if args.full else PassKind.INCREMENTAL,
            "allow_deactivations": args.allow_deactivations,
        },
    )


def cmd_resync(args: argparse.Namespace, settings: Settings) -> int:
    request: dict[str, Any] = {"retry_quarantined": args.retry_quarantined}
    if args.release_held:
        from reconciler.service.admin_requests import compute_held_token, list_releasable

        store = Store(settings.store.path)
        print_held(store.list_held(), sys.stdout)
        if held := list_releasable(store):  # refused if the list changes before the pass
            request["token"] = compute_held_token(held)
    return _act(args, settings, "resync", request, wait=not args.no_wait)


def cmd_release(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.service.admin_requests import check_release

    store = _existing_store(settings)
    if args.list or not (args.token or args.ids):
        print_held(store.list_held(), sys.stdout)
        return 0
    request = {"token": args.token} if args.token else {"ids": args.ids}
    _, refusal = check_release(store, request)
    if refusal:
        print(f"reconciler: refused: {refusal}", file=sys.stderr)
        print_held(store.list_held(), sys.stdout)
        return 2
    return _act(args, settings, "release", request)


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    store = _existing_store(settings)
    if not (args.clear or args.all):
        print_quarantined(store.list_quarantined(now_utc()), sys.stdout)
        return 0
    ids = None if args.all else _resolve_all(store, args.clear)
    return _act(args, settings, "quarantine-clear", {"ids": ids})


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.admin_web import build_admin_views
    from reconciler.service.lifecycle import run_service

    services = args.build(settings)
    return run_service(services, build_admin_views(services, parse_since))


def cmd_admin_password(args: argparse.Namespace, settings: Settings | None) -> int:
    from reconciler.commands.admin_web import print_password_hash

    return print_password_hash(sys.stdout)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.status import collect_status
    from reconciler.commands.terminal import print_status

    status = collect_status(_existing_store(settings), settings, now_utc())
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print_status(status, sys.stdout)
    return 0


def _existing_store(settings: Settings) -> Store:
    """The database a read-only command reads: never created by it (a wrong path says so)."""
    path = Path(settings.store.path)
    if not path.is_file():
        raise ConfigError(
            f"setting store.path: no database at {path.resolve()}: check store.path (or "
            "$RECONCILER_STORE__PATH); a read-only command never creates one"
        )
    return Store(path)


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    store = _existing_store(settings)
    ids = _resolve_all(store, [args.employee]) if args.employee else None
    rows = store.list_journal(hibob_id=ids, since=args.since, limit=None)
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(format_history_row(row))
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.explain import explain_employee

    store = _existing_store(settings) if args.offline else Store(settings.store.path)
    services = None if args.offline else args.build(settings, store=store)
    code = explain_employee(services, store, args.employee, now_utc(), sys.stdout)
    if not args.apply or code:
        return code
    return _act(args, settings, "targeted", {"employee": args.employee})


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.preview import run_preview

    candidate = load_settings(args.candidate)  # invalid: ConfigError naming the key (exit 2)
    return run_preview(args.build(settings), candidate, sys.stdout, as_json=args.json)


def cmd_shadow(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.shadow import run_shadow_report

    since = datetime.fromisoformat(args.since) if args.since else None
    return run_shadow_report(
        _existing_store(settings), settings, now_utc(), sys.stdout, since=since, as_json=args.json
    )


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.commands.check import run_checks

    path = settings_file_path(args.config, os.environ)
    return run_checks(settings, args.build(settings), sys.stdout, config_path=path)


def cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    from reconciler.commands.demo import run_demo

    return run_demo(size=args.size, out=sys.stdout, keep=args.keep)


def _act(
    args: argparse.Namespace,
    settings: Settings,
    kind: str,
    request: dict[str, Any],
    wait: bool = True,
) -> int:
    return request_action(
        settings,
        kind,
        request,
        sys.stdout,
        wait=wait,
        build=lambda s, store: args.build(s, store=store),
    )


def _resolve_all(store: Store, identifiers: Sequence[str]) -> list[str]:
    """The Hibob id for each id or email the database knows; one clear error for an unknown."""
    found: list[str] = []
    for identifier in identifiers:
        ids = store.find_employee_ids(identifier)
        if not ids:
            raise UnknownEmployee(
                f"employee {identifier} is not in the database (give a Hibob "
                "id or an email the employee had)"
            )
        found.append(ids[0])  # an email's most recent holder
    return found


class UnknownEmployee(ReconcilerError):
    exit_code = 1


def parse_since(text: str, now: datetime | None = None) -> str:
    """A date (UTC midnight), a datetime (UTC when no offset) or a duration back from now
    (`90m`, `2h`, `3d`, `1w`), as the stored timestamp text it compares with."""
    now = now or now_utc()
    value = text.strip()
    if match := DURATION.match(value.lower()):
        amount, unit = int(match[1]), match[2]
        return utc_text(now - timedelta(seconds=amount * UNIT_SECONDS[unit]))
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {text!r}: give a date (2026-11-28), a datetime (2026-11-28T09:30) or a "
            "duration (90m, 2h, 3d, 1w)"
        ) from None
    if len(value) == 10:
        moment = datetime.combine(moment.date(), time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return utc_text(moment)


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


def main(
    argv: Sequence[str] | None = None, *, build: Callable[..., PassContext] = build_pass_context
) -> int:
    """Run one command; `build` turns settings into PassContext (tests inject simulators)."""
    args = build_parser().parse_args(argv)
    built: list[PassContext] = []

    def build_and_keep(*given: Any, **options: Any) -> PassContext:
        built.append(build(*given, **options))
        return built[-1]

    args.build = build_and_keep
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        settings = (
            None if args.command in ("demo", "admin-password") else load_settings(args.config)
        )
        code = int(args.func(args, settings))
        sys.stdout.flush()  # a reader that closed the pipe is met here, not at exit
        return code
    except ReconcilerError as exc:
        code = exc.exit_code if not isinstance(exc, ApiError) else 1
        if args.command == "run":  # the service's journal reads JSON lines, this one too
            logging.getLogger("reconciler").error("%s", exc, extra={"exit_code": code})
        else:
            print(f"reconciler: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`history | head`): stop quietly, as if killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        for context in built:  # the HTTP clients' pooled connections end with the command
            context.close_clients()
