"""The reconciler's vocabulary: one StrEnum for each set of names stored in the database, shown by
`status` and `history`, and exported as metric labels (pass kinds and outcomes, actions and their
outcomes, admin request kinds, webhook results).

Pure; every layer imports its names from here, so a new outcome is added once. The values are
the strings already in databases and dashboards: never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class PassKind(StrEnum):
    """What a pass reads: the incremental search, everything (full resync), or one employee."""

    INCREMENTAL = "incremental"
    FULL = "full"
    TARGETED = "targeted"


class PassOutcome(StrEnum):
    """How a pass ended, as stored in history and shown by `status`; each maps to an exit code."""

    OK = "ok"
    HELD = "held"
    ERRORS = "errors"
    FAILED = "failed"
    DRY_RUN = "dry-run"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def exit_code(self) -> int:
        """0 completed, 1 could not complete or a write failed, 3 held by a safety limit."""
        if self in (
            PassOutcome.FAILED,
            PassOutcome.ERRORS,
            PassOutcome.INTERRUPTED,
            PassOutcome.CANCELLED,
        ):
            return 1
        return 3 if self is PassOutcome.HELD else 0

    @property
    def is_success(self) -> bool:
        """The pass completed: "held" still applied creates and updates (product.md §3)."""
        return self in (PassOutcome.OK, PassOutcome.HELD)


class DisagreementKind(StrEnum):
    """A shadow pass's disagreement between the desired state and what 360Learning holds."""

    MISSING = "missing"  # an in-scope active employee with no active account
    NOT_DEACTIVATED = "not_deactivated"  # a leaver or out-of-scope person still active
    FIELDS = "fields"  # a named attribute or custom field differs
    MANAGER = "manager"
    GROUPS = "groups"
    AMBIGUOUS = "ambiguous"


class ActionKind(StrEnum):
    """A journalled action: the typed actions of a plan, the link and membership writes, a skip."""

    CREATE = "create"
    ADOPT = "adopt"
    UPDATE = "update"
    REACTIVATE = "reactivate"
    DEACTIVATE = "deactivate"
    MANAGER = "manager"
    GROUPS = "groups"
    SKIP = "skip"


class ActionOutcome(StrEnum):
    """How a journalled action ended ("pending" until its answer is recorded)."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    HELD = "held"
    SUPERSEDED = "superseded"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"


class RequestKind(StrEnum):
    """An admin request left for the running service by a command."""

    RESYNC = "resync"
    SYNC = "sync"
    TARGETED = "targeted"
    RELEASE = "release"
    QUARANTINE_CLEAR = "quarantine-clear"


class WebhookSource(StrEnum):
    """Which of the two Hibob webhooks a delivery came to."""

    UPSERT = "upsert"
    DEACTIVATION = "deactivation"


class WebhookResult(StrEnum):
    """What the receiver made of one delivery (its answer body and the metric label)."""

    ACCEPTED = "accepted"
    PING = "ping"
    IGNORED = "ignored"
    UNKNOWN_EVENT = "unknown_event"
    BAD_CONTENT_LENGTH = "bad_content_length"
    TOO_LARGE = "too_large"
    SECRET_NOT_CONFIGURED = "secret_not_configured"
    NO_SIGNATURE = "no_signature"
    BAD_SIGNATURE = "bad_signature"
    TOO_DEEP = "too_deep"
    MALFORMED_JSON = "malformed_json"
    NO_EVENT_TYPE = "no_event_type"
    NO_EMPLOYEE_ID = "no_employee_id"
    STORE_FAILED = "store_failed"
