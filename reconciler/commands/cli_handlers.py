"""The command line's handlers, one `cmd_*` per command: each loads what it needs, calls one
function and returns the exit code; with the helpers they share (`--since` parsing, resolving
employees by identifier).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from reconciler.commands.admin import request_action, run_watched
from reconciler.commands.terminal import (
    format_history_row,
    print_held,
    print_quarantined,
    print_result,
)
from reconciler.config import Settings, load_settings, settings_file_path
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.passes.context import now_utc
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
