"""The reconciler's exception tree; the CLI turns any of these into one line and an exit code.

    ReconcilerError
    ├── ConfigError                 bad or missing setting (exit 2)
    ├── ApiError(service, status, code, detail)   .retryable says whether a retry may help
    │   ├── ApiUnavailable          transport failure, timeout, 5xx          (retryable)
    │   ├── ApiRateLimited          429, .retry_after_seconds when known     (retryable)
    │   ├── ApiAuthFailed           401/403: never retried in a loop
    │   └── ApiRejected             any other 4xx; .code is the vendor's error code
    ├── PassFailed                  the pass as a whole cannot go on: a credential or scope
    │                               error, or deciding fields withheld for many (exit 1)
    ├── InstanceLocked              another process holds the database (exit 2)
    └── StoreUnusable               the database or its lock file cannot be used: damaged,
                                    newer schema, locked too long, unwritable (exit 2)

httpx exceptions never escape `reconciler.clients.http`; nothing here carries a secret.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the reconciler raises on purpose."""

    exit_code = 1


class ConfigError(ReconcilerError):
    """A setting is missing or invalid; the message names the setting."""

    exit_code = 2


class InstanceLocked(ReconcilerError):
    """Another reconciler process holds this database."""

    exit_code = 2


class StoreUnusable(ReconcilerError):
    """The database or its lock file cannot be used; the message names the path and the fix."""

    exit_code = 2


class PassFailed(ReconcilerError):
    """The pass cannot complete: nothing more is written, and nobody is quarantined for it."""


class ApiError(ReconcilerError):
    """A call to Hibob or 360Learning failed; `retryable` errors never count toward quarantine."""

    retryable = False

    def __init__(
        self, service: str, status: int | None, code: str | None = None, detail: str = ""
    ) -> None:
        self.service = service
        self.status = status
        self.code = code
        self.detail = detail
        parts = [f"{service} API"]
        if status is not None:
            parts.append(f"answered {status}")
        if code:
            parts.append(f"({code})")
        text = " ".join(parts)
        super().__init__(f"{text}: {detail}" if detail else text)


class ApiUnavailable(ApiError):
    """Transport failure, timeout or 5xx: worth retrying later."""

    retryable = True


class ApiRateLimited(ApiError):
    """429: retry after `retry_after_seconds` (None when the service gave no hint)."""

    retryable = True

    def __init__(self, service: str, retry_after_seconds: float | None = None, detail: str = ""):
        super().__init__(service, 429, "tooManyRequests", detail)
        self.retry_after_seconds = retry_after_seconds


class ApiAuthFailed(ApiError):
    """401/403: the credentials or their scopes are wrong; never retried in a loop."""


class ApiRejected(ApiError):
    """Any other 4xx; `code` carries the vendor's error code (e.g. mailAlreadyUsed)."""


class AccountConflict(ApiRejected):
    """What 360Learning holds for one employee conflicts with what the reconciler would write
    (their deleted account was re-mailed, or a mail is another account's). Not an answer
    360Learning gave: the reconciler's own conclusion, reported on that employee."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__("360Learning", None, code, detail)
