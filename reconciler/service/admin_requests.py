"""Admin requests: what an admin asks for (a resync, a pass, one employee, releasing held
deactivations, lifting quarantine) and how each kind is carried out.

The CLI (`commands.admin`) carries a request out itself under the instance lock, or saves it
as a row that the running service's `AdminRequests` claims every second and carries out through
the service's pass lock. `carry_out` is the one place that says what each kind does, for both.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.core.vocabulary import ActionKind, ActionOutcome, PassKind, PassOutcome, RequestKind
from reconciler.store.database import Store
from reconciler.store.records import HeldDeactivation, RequestRecord

if TYPE_CHECKING:  # a command that only asks the service never imports the pass machinery
    from reconciler.passes.reconcile import PassResult

log = logging.getLogger("reconciler.service.admin_requests")

KINDS = tuple(RequestKind)
QUICK_KINDS = ("targeted", "quarantine-clear")  # one employee's work, or no pass at all


# Runs one pass (its kind, then run_pass's options); None when the service is stopping.
RunPass = Callable[..., "PassResult | None"]


@dataclass(frozen=True)
class RequestOutcome:
    outcome: str  # a pass outcome, or refused (the held list changed) or cancelled
    pass_id: int | None = None
    detail: str | None = None
    result: PassResult | None = None

    @property
    def exit_code(self) -> int:
        if self.result is not None:
            return self.result.exit_code
        if self.outcome == "refused":
            return 2  # the held list changed since it was shown: a usage error
        try:
            return PassOutcome(self.outcome).exit_code
        except ValueError:
            return 1


def compute_held_token(held: Iterable[HeldDeactivation]) -> str:
    """A short hash of the held list (ids and reasons): the list an admin saw and approved."""
    lines = sorted(f"{row.hibob_id}\t{row.reason}" for row in held)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:10]


def list_releasable(store: Store) -> list[HeldDeactivation]:
    """Held deactivations an admin may release (not those held because of a bad read)."""
    return [row for row in store.list_held() if row.is_releasable]


def check_release(store: Store, args: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The ids a release request may release now, or why it is refused (the list changed)."""
    held = list_releasable(store)
    held_ids = [row.hibob_id for row in held]
    if not held:
        return [], "nothing releasable is held any more"
    if args.get("token") is not None:
        token = compute_held_token(held)
        if args["token"] != token:
            return [], (
                f"the held list changed since it was shown (token {args['token']}, now "
                f"{token} for {len(held)} held deactivations)"
            )
        return held_ids, None
    wanted = list(dict.fromkeys(args.get("ids") or ()))
    missing = [i for i in wanted if i not in held_ids]
    if missing or not wanted:
        return [], f"not held any more: {', '.join(missing) or 'no employee given'}"
    return wanted, None


def carry_out(
    store: Store, kind: str, args: Mapping[str, Any], run: RunPass, now: datetime
) -> RequestOutcome | None:
    """Do what one request asks; None when the pass could not start (service stopping)."""
    detail: list[str] = []
    release: frozenset[str] = frozenset()
    if kind in ("release", "resync", "sync") and (args.get("token") or args.get("ids")):
        ids, refusal = check_release(store, args)
        if refusal:
            return RequestOutcome("refused", detail=refusal)
        release = frozenset(ids)
    if kind == "quarantine-clear" or args.get("retry_quarantined"):
        cleared = store.clear_quarantine(
            args.get("ids") if kind == "quarantine-clear" else None, now
        )
        detail.append(
            f"quarantine lifted for {len(cleared)}" + (f": {', '.join(cleared)}" if cleared else "")
        )
        if kind == "quarantine-clear":
            return RequestOutcome(
                "ok", detail=detail[0] + (" (the next pass retries them)" if cleared else "")
            )
    if kind == "resync":
        result = run(PassKind.FULL, released=release)
    elif kind == "sync":
        pass_kind = args.get("pass_kind", PassKind.INCREMENTAL)
        if pass_kind not in (PassKind.INCREMENTAL, PassKind.FULL):
            raise ValueError(
                f"a sync request's pass_kind is incremental or full, not {pass_kind!r}"
            )
        result = run(
            PassKind(pass_kind),
            allow_deactivations=bool(args.get("allow_deactivations")),
            released=release,
        )
    elif kind == "targeted":
        result = run(PassKind.TARGETED, employee=args["employee"])
    elif kind == "release":
        result = run(_release_pass_kind(store, release), released=release)
    else:
        raise ValueError(f"unknown request kind {kind!r}")
    if result is None:
        return None
    if release:
        detail.append(_describe_release(store, result, release))
    return RequestOutcome(result.outcome, result.pass_id or None, "; ".join(detail) or None, result)


def _release_pass_kind(store: Store, ids: frozenset[str]) -> PassKind:
    """Deactivations a full pass held (drift) are only seen again by a full pass."""
    passes = {row.pass_id for row in list_releasable(store) if row.hibob_id in ids}
    rows = [store.get_pass(p) for p in passes if p]
    kinds = {row.kind for row in rows if row}
    return PassKind.FULL if PassKind.FULL in kinds else PassKind.INCREMENTAL


def _describe_release(store: Store, result: PassResult, ids: frozenset[str]) -> str:
    done = {
        row.hibob_id
        for row in store.list_journal(pass_id=result.pass_id)
        if row.action == ActionKind.DEACTIVATE and row.outcome == ActionOutcome.OK
    }
    released = sorted(ids & done)
    text = f"released {len(released)} of {len(ids)} held deactivations"
    if gone := sorted(ids - done):
        text += f"; not deactivated (no longer wanted, or failed): {', '.join(gone)}"
    return text


class AdminRequests:
    """The service side: claims request rows (a scheduler job) and carries them out (the
    worker thread), one pass at a time through `run`, which takes the service's pass lock."""

    def __init__(
        self,
        store: Store,
        *,
        run: RunPass,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        run_beside: RunPass | None = None,
        wake_quick: Callable[[], None] | None = None,
    ) -> None:
        self.store, self._run, self._clock, self._wake = store, run, clock, wake
        # One employee's work (sync --employee, explain --apply, quarantine --clear) runs
        # beside a long pass, as hints do, on its own worker: it never waits for a resync.
        self._run_beside = run_beside or run
        self._wake_quick = wake_quick or wake
        self._lock = threading.Lock()
        self._claimed: list[RequestRecord] = []
        self._quick: list[RequestRecord] = []
        self._closed = False

    def poll(self) -> None:
        """Claim new requests and wake their worker (a scheduler job, every second)."""
        if self._closed:
            return
        taken = self.store.take_requests(self._clock())
        quick = [r for r in taken if r.kind in QUICK_KINDS]
        slow = [r for r in taken if r.kind not in QUICK_KINDS]
        with self._lock:
            self._claimed.extend(slow)
            self._quick.extend(quick)
        if slow:
            self._wake()
        if quick:
            self._wake_quick()

    def serve(self) -> int:
        """Carry out every claimed request; identical resyncs share one full pass.
        Returns how many requests were finished."""
        with self._lock:
            claimed, self._claimed = self._claimed, []
            if self._run_beside is self._run:  # no quick worker: this one serves them too
                claimed, self._quick = self._quick + claimed, []
        return self._serve(claimed, self._run)

    def serve_quick(self) -> int:
        """Carry out the claimed one-employee requests (beside any long pass)."""
        with self._lock:
            claimed, self._quick = self._quick, []
        return self._serve(claimed, self._run_beside)

    def _serve(self, claimed: list[RequestRecord], run: RunPass) -> int:
        finished = 0
        for ids, kind, args in _coalesce(claimed):
            if args.get("allow_deactivations"):
                # Only the CLI beside the pass may allow everything it holds: a row releases
                # the held list its maker saw (its token), never what nobody was shown.
                log.warning("admin request(s) %s: allow_deactivations ignored (a row)", ids)
                args = {k: v for k, v in args.items() if k != "allow_deactivations"}
            try:
                outcome = carry_out(self.store, kind, args, run, self._clock())
            except Exception as exc:  # the waiter gets an answer, the worker goes on
                log.exception("admin request(s) %s (%s) failed", ids, kind)
                outcome = RequestOutcome("failed", detail=f"{type(exc).__name__}: {exc}")
            if outcome is None:
                outcome = RequestOutcome("cancelled", detail="the service stopped first")
            self.store.finish_requests(
                ids, outcome.pass_id, outcome.outcome, self._clock(), outcome.detail
            )
            finished += len(ids)
            source = args.get("source") or "command line"
            log.info(
                "admin request(s) %s (%s, from the %s) carried out: %s%s",
                ", ".join(map(str, ids)),
                kind,
                source,
                outcome.outcome,
                f" ({outcome.detail})" if outcome.detail else "",
                extra={"pass_id": outcome.pass_id, "outcome": outcome.outcome, "source": source},
            )
        return finished

    def close(self) -> None:
        """Stop claiming; requests claimed but not started are finished as cancelled."""
        self._closed = True
        with self._lock:
            claimed, self._claimed, self._quick = self._claimed + self._quick, [], []
        if claimed:
            self.store.finish_requests(
                [r.id for r in claimed],
                None,
                "cancelled",
                self._clock(),
                "the service stopped first",
            )


def _coalesce(
    claimed: list[RequestRecord],
) -> list[tuple[list[int], str, Mapping[str, Any]]]:
    groups: list[tuple[list[int], str, Mapping[str, Any]]] = []
    for request in claimed:
        same = next(
            (g for g in groups if request.kind == "resync" == g[1] and g[2] == request.args),
            None,
        )
        if same:
            same[0].append(request.id)
        else:
            groups.append(([request.id], request.kind, request.args))
    return groups
