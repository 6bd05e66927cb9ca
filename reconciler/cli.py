"""Command line: thin commands that load settings, build objects and call one function each.

Every ReconcilerError becomes one line on stderr and its exit code (0 ok, 1 failed, 2 bad
settings or usage, 3 held by a safety limit); never a traceback for an expected failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from reconciler.config import Settings, load_settings
from reconciler.errors import ApiError, InstanceLocked, ReconcilerError
from reconciler.logs import configure_logging
from reconciler.reconcile import PassKind, run_pass
from reconciler.report import format_history_row, print_result
from reconciler.store import Store
from reconciler.wiring import Services, build_services, now_utc


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    services = args.build(settings)
    if not args.dry_run:
        try:
            services.store.acquire_instance_lock()
        except InstanceLocked:
            raise InstanceLocked(
                f"a reconciler service is running on {settings.store.path}: use `reconciler "
                "resync` for a full pass, or `sync --dry-run` to preview") from None
    kind: PassKind = "targeted" if args.employee else "full" if args.full else "incremental"
    result = run_pass(services, kind, now=now_utc(), dry_run=args.dry_run,
                      employee=args.employee, allow_deactivations=args.allow_deactivations)
    print_result(result)
    return result.exit_code


def cmd_resync(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.resync import request_resync

    return request_resync(settings, wait=not args.no_wait, out=sys.stdout,
                          build=lambda s, store: args.build(s, store=store))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.service import run_service

    return run_service(args.build(settings))


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.report import print_status
    from reconciler.status import collect_status

    store = Store(settings.store.path)
    status = collect_status(store, settings, now_utc())
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print_status(status, sys.stdout)
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    store = Store(settings.store.path)
    employee = args.employee
    if employee and "@" in employee:  # any email the employee has had
        employee = next(iter(store.find_employees_by_email(employee)), employee)
    rows = store.list_journal(hibob_id=employee, since=args.since)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(format_history_row(row))
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.explain import explain_employee

    services = args.build(settings)
    explain_employee(services, args.employee, now_utc(), sys.stdout)
    if not args.apply:
        return 0
    services.store.acquire_instance_lock()
    result = run_pass(services, "targeted", now=now_utc(), employee=args.employee)
    print_result(result)
    return result.exit_code


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.check import run_checks

    return run_checks(settings, args.build(settings), sys.stdout)


def cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    from reconciler.demo import run_demo

    return run_demo(size=args.size, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler",
                                     description="Keep 360Learning users in step with Hibob.")
    parser.add_argument("--config", help="settings file (default ./settings.toml or "
                                         "$RECONCILER_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser("sync", help="one pass now, then exit")
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument("--full", action="store_true", help="also compare every 360Learning user")
    sync.add_argument("--employee", metavar="ID", help="one employee (Hibob id or email)")
    sync.add_argument("--allow-deactivations", action="store_true",
                      help="release deactivations held by the breaker")
    sync.set_defaults(func=cmd_sync)
    resync = sub.add_parser("resync", help="force a full resync (through the running service)")
    resync.add_argument("--no-wait", action="store_true")
    resync.set_defaults(func=cmd_resync)
    sub.add_parser("run", help="the long-running service").set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="last passes, held deactivations, quarantine, hints")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    history = sub.add_parser("history", help="the audit trail of actions")
    history.add_argument("--employee", metavar="ID")
    history.add_argument("--since", metavar="DATE")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    explain = sub.add_parser("explain", help="why one employee is (or is not) synchronised")
    explain.add_argument("employee", metavar="EMPLOYEE", help="Hibob id or email")
    explain.add_argument("--apply", action="store_true", help="reconcile it now")
    explain.set_defaults(func=cmd_explain)
    sub.add_parser("check", help="validate settings, credentials, scopes and field permissions"
                   ).set_defaults(func=cmd_check)
    demo = sub.add_parser("demo", help="run against the bundled simulators (no credentials)")
    demo.add_argument("--size", type=int, default=300)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None, *, build: Callable[..., Services] = build_services
         ) -> int:
    """Run one command; `build` turns settings into Services (tests inject simulators)."""
    args = build_parser().parse_args(argv)
    args.build = build
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        settings = None if args.command == "demo" else load_settings(args.config)
        return int(args.func(args, settings))
    except ReconcilerError as exc:
        code = exc.exit_code if not isinstance(exc, ApiError) else 1
        if args.command == "run":  # the service's journal reads JSON lines, this one too
            logging.getLogger("reconciler").error("%s", exc, extra={"exit_code": code})
        else:
            print(f"reconciler: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130


