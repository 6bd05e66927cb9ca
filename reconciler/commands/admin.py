"""The CLI side of admin actions (`resync`, `sync`, `sync --employee`, `explain --apply`,
`release`, `quarantine --clear`): carried out here under the instance lock when no service runs,
or asked of the running service through a request row, whose outcome is then awaited.

Called by the CLI only; nothing here talks to the service except through the store.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.commands.terminal import (
    TerminalProgress,
    describe_interruption,
    format_history_row,
    print_held,
    print_result,
)
from reconciler.config import Settings
from reconciler.core.vocabulary import PassKind
from reconciler.errors import InstanceLocked
from reconciler.passes.context import PassContext, now_utc
from reconciler.passes.progress import PassProgress
from reconciler.service.admin_requests import (
    RequestOutcome,
    carry_out,
    compute_held_token,
    list_releasable,
)
from reconciler.store.database import Store
from reconciler.store.records import RequestRecord

if TYPE_CHECKING:  # imported where a pass runs here: a request to the service needs none
    from reconciler.passes.reconcile import PassResult

POLL_SECONDS = 0.2
TIMEOUT_SECONDS = 1800.0
SHOWN_ROWS = 50
Build = Callable[[Settings, Store], PassContext]


def request_action(
    settings: Settings,
    kind: str,
    args: Mapping[str, Any],
    out: TextIO,
    *,
    wait: bool = True,
    build: Build | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> int:
    """Carry out one admin request here, or through the running service; the exit code."""
    store = Store(settings.store.path)
    try:
        store.acquire_instance_lock()
    except InstanceLocked:
        try:
            args = _bound_to_what_was_shown(store, kind, args, out)
            return _ask_service(store, kind, args, wait, out, sleep, timeout_seconds)
        finally:
            store.close()
    try:
        now = now_utc()
        built: list[PassContext] = []

        def run(pass_kind: Any, **options: Any) -> PassResult | None:
            if not built:  # built on demand: lifting quarantine needs no credentials
                built.append((build or _build)(settings, store))
            return run_watched(built[0], pass_kind, now=now, **options)

        outcome = carry_out(store, kind, args, run, now)
        assert outcome is not None  # only a stopping service leaves a request undone
        if outcome.result is not None:
            print_result(outcome.result, out)
        _print_detail(store, outcome, out)
        return outcome.exit_code
    finally:
        store.close()


def run_watched(
    services: PassContext, kind: PassKind, *, now: datetime, dry_run: bool = False, **options: Any
) -> PassResult:
    """A pass run here, watched: a progress bar on a terminal (else a log line every 10 s), and
    its progress saved for `status`. Ctrl-C stops it cleanly: one line on stderr says what was
    done and what is left, then KeyboardInterrupt goes on (exit 130)."""
    from reconciler.passes.apply import PassHooks
    from reconciler.passes.reconcile import run_pass

    is_terminal = sys.stdout.isatty()
    progress = PassProgress(
        f"{kind} pass",
        log_every_seconds=None if is_terminal else 10.0,
        save_state=None if dry_run else services.store.save_service_state,
    )
    bar = TerminalProgress() if is_terminal and kind != PassKind.TARGETED else None
    if bar:
        progress.tracker.listeners.append(bar.update)
    try:
        with bar or contextlib.nullcontext():
            return run_pass(
                services,
                kind,
                now=now,
                dry_run=dry_run,
                hooks=PassHooks(clock=now_utc, progress=progress.tracker),
                **options,
            )
    except KeyboardInterrupt:
        print(
            f"reconciler: interrupted: {describe_interruption(progress.tracker.snapshot())}",
            file=sys.stderr,
        )
        raise
    finally:
        progress.finish()


def request_resync(settings: Settings, wait: bool, out: TextIO, **options: Any) -> int:
    """`reconciler resync`: a full pass now, in the running service or here."""
    return request_action(settings, "resync", {}, out, wait=wait, **options)


def _build(settings: Settings, store: Store) -> PassContext:
    from reconciler.commands.wiring import build_pass_context

    return build_pass_context(settings, store=store)


def _bound_to_what_was_shown(
    store: Store, kind: str, args: Mapping[str, Any], out: TextIO
) -> Mapping[str, Any]:
    """`sync --allow-deactivations` through the service releases exactly the held list shown
    here (by its token), never what a later pass holds: the service honours no "allow all"."""
    if kind != "sync" or not args.get("allow_deactivations"):
        return args
    bound = {k: v for k, v in args.items() if k != "allow_deactivations"}
    print_held(store.list_held(), out)
    if held := list_releasable(store):
        bound["token"] = compute_held_token(held)
    else:
        _say(
            out, "nothing is held now: deactivations this pass holds wait for `reconciler release`"
        )
    return bound


def _ask_service(
    store: Store,
    kind: str,
    args: Mapping[str, Any],
    wait: bool,
    out: TextIO,
    sleep: Callable[[float], None],
    timeout_seconds: float,
) -> int:
    asked = now_utc()
    request_id = store.save_request(
        kind, args, asked, expires_at=asked + timedelta(seconds=timeout_seconds)
    )
    _say(
        out,
        f"{kind} requested (request {request_id}): the running service carries it out "
        "within seconds",
    )
    if not wait:
        return 0
    polls, started = 0, False
    while polls * POLL_SECONDS < timeout_seconds:
        request = store.get_request(request_id)
        if request and request.finished_at:
            return _print_request_outcome(store, request, out)
        if request and request.started_at and not started:
            started = True
            _say(out, f"{kind} started")
        polls += 1
        if polls % 25 == 0 and not store.is_instance_running():  # every 5 s
            request = store.get_request(request_id)
            if request and request.finished_at:
                return _print_request_outcome(store, request, out)
            store.expire_request(request_id, now_utc(), "the service stopped; its command gave up")
            _say(
                out,
                f"reconciler: the service stopped before finishing the {kind}; run the "
                "command again",
            )
            return 1
        if polls % 300 == 0:  # every minute
            _say(out, f"still running ({int(polls * POLL_SECONDS)} s)")
        sleep(POLL_SECONDS)
    if store.expire_request(request_id, now_utc(), "its command stopped waiting"):
        _say(
            out,
            f"reconciler: the service did not take the {kind} within {int(timeout_seconds)} s"
            " (a long pass?); it will not run: run the command again",
        )
        return 1
    _say(
        out,
        f"reconciler: no outcome after {int(timeout_seconds)} s; the {kind} goes on in "
        "the service (see `reconciler status`)",
    )
    return 1


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)


def _print_request_outcome(store: Store, request: RequestRecord, out: TextIO) -> int:
    outcome = RequestOutcome(request.outcome or "failed", request.pass_id, request.detail)
    if outcome.outcome == "cancelled":
        _say(
            out,
            f"reconciler: the service stopped before the {request.kind} ran; run the command again",
        )
        return 1
    row = store.get_pass(outcome.pass_id) if outcome.pass_id else None
    if row:
        counts = ", ".join(f"{k} {v}" for k, v in row.counts.items())
        _say(out, f"{row.kind} pass {row.id}: {outcome.outcome} — {counts or 'nothing to do'}")
        if row.error:
            _say(out, f"  error: {row.error}")
        journal = store.list_journal(pass_id=row.id)
        for entry in journal[:SHOWN_ROWS]:
            _say(out, "  " + format_history_row(entry))
        if len(journal) > SHOWN_ROWS:
            _say(out, f"  ... and {len(journal) - SHOWN_ROWS} more (reconciler history)")
    elif outcome.outcome != "refused":
        _say(out, f"{request.kind}: {outcome.outcome}")
    _print_detail(store, outcome, out)
    return outcome.exit_code


def _print_detail(store: Store, outcome: RequestOutcome, out: TextIO) -> None:
    if outcome.outcome == "refused":
        _say(out, f"reconciler: refused: {outcome.detail}")
        print_held(store.list_held(), out)
    elif outcome.detail:
        _say(out, outcome.detail)
