"""The store's typed rows: one frozen record per table read (passes, journal, holds, hints,
admin requests), each built by one mapper in its table family's module.

Timestamps are the stored UTC text (`utc_text`), as `status` and `history` show it. `as_json`
gives the row under the keys `status --json` and `history --json` have always printed (the
Hibob id as `employee_id`). Records only: no SQL, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.vocabulary import ActionKind, ActionOutcome, PassKind, PassOutcome


@dataclass(frozen=True, slots=True)
class PassRecord:
    """A pass as history keeps it; `counts` are the journal's so far while it runs."""

    id: int
    kind: PassKind
    is_dry_run: bool
    started_at: str
    finished_at: str | None
    outcome: PassOutcome | None
    counts: Mapping[str, int]
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "dry_run": self.is_dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "counts": dict(self.counts),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journalled action (`pending` until its answer was recorded)."""

    pass_id: int | None
    at: str
    hibob_id: str
    email: str | None
    action: ActionKind
    fields: tuple[str, ...]
    outcome: ActionOutcome
    reason: str | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "pass_id": self.pass_id,
            "at": self.at,
            "employee_id": self.hibob_id,
            "email": self.email,
            "action": self.action,
            "fields": list(self.fields),
            "outcome": self.outcome,
            "reason": self.reason,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class HeldDeactivation:
    """A deactivation a safety limit held; `is_releasable` False when a bad read held it."""

    hibob_id: str
    email: str | None
    reason: str
    pass_id: int | None
    held_at: str
    is_releasable: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "employee_id": self.hibob_id,
            "email": self.email,
            "reason": self.reason,
            "pass_id": self.pass_id,
            "held_at": self.held_at,
            "is_releasable": int(self.is_releasable),  # SQLite's 0/1, as always printed
        }


@dataclass(frozen=True, slots=True)
class QuarantinedEmployee:
    """An employee whose repeated failures stopped its retries until `quarantined_until`."""

    hibob_id: str
    email: str | None
    last_error: str | None
    failures: int
    quarantined_until: str

    def as_json(self) -> dict[str, Any]:
        return {
            "employee_id": self.hibob_id,
            "email": self.email,
            "reason": self.last_error,
            "failures": self.failures,
            "until": self.quarantined_until,
        }


@dataclass(frozen=True, slots=True)
class SkippedEmployee:
    """An employee whose latest journal row is a skip, and since when."""

    hibob_id: str
    email: str | None
    reason: str
    skipped_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "employee_id": self.hibob_id,
            "email": self.email,
            "reason": self.reason,
            "since": self.skipped_at,
        }


@dataclass(frozen=True, slots=True)
class HintRecord:
    """A webhook delivery not served yet: pending (retried at `next_attempt_at`) or parked
    until the next full pass. `deliveries` counts the ones coalesced into it."""

    id: int
    hibob_id: str
    event_type: str | None
    received_at: str
    attempts: int
    deliveries: int
    next_attempt_at: str | None
    parked_at: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """An admin request for the running service. `kind` is a `RequestKind` and `outcome` a
    pass outcome, "refused" or "expired" for rows a command wrote; a hand-written row may hold
    anything, which the service refuses rather than the store rejecting on read."""

    id: int
    kind: str
    args: Mapping[str, Any]
    requested_at: str
    started_at: str | None
    finished_at: str | None
    pass_id: int | None
    outcome: str | None
    detail: str | None
