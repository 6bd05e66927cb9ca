"""The admin page's sign-in: the password hash, sessions with an idle expiry, CSRF tokens and
the slowing down of failed sign-ins.

`admin-password` (the CLI) calls `hash_password`; `admin_page` calls the rest. No password,
hash or token is ever logged or rendered; sessions live in memory (a restart signs everyone
out). The hash format says how it was made: `scrypt$<n>$<r>$<p>$<salt>$<hash>` (base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # about 32 MiB and 50-100 ms per guess
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_CHARS = 12
FREE_FAILURES = 3
"""Failed sign-ins from one source answered at once; each one after waits twice as long."""
MAX_DELAY_SECONDS = 900.0
FAILURE_MEMORY_SECONDS = 3600.0
"""A source with no failed sign-in for this long starts afresh."""
GLOBAL_FAILURES = 50
"""Failed sign-ins in the memory window, from all sources, after which every source waits."""
GLOBAL_DELAY_SECONDS = 10.0
MAX_SESSIONS = 1000
Monotonic = Callable[[], float]


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The self-describing scrypt hash of `password` (a fresh random salt unless given)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the admin password must have at least {MIN_PASSWORD_CHARS} characters")
    salt = salt or secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """The hash of `admin.password_hash`; ConfigError naming the setting (never its value)."""
        parts = text.strip().split("$")
        try:
            if len(parts) != 6 or parts[0] != "scrypt":
                raise ValueError
            n, r, p = (int(x) for x in parts[1:4])
            salt, digest = (
                base64.b64decode(parts[4], validate=True),
                base64.b64decode(parts[5], validate=True),
            )
            if n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
                raise ValueError
            if len(salt) < 16 or len(digest) < 32:
                raise ValueError
        except ValueError:
            raise ConfigError(
                "setting admin.password_hash: not a hash printed by `reconciler admin-password`"
                " (scrypt$n$r$p$salt$hash)"
            ) from None
        return cls(n, r, p, salt, digest)

    def verify(self, password: str) -> bool:
        """Constant-time comparison of the password's hash with this one."""
        candidate = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=length
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Session:
    csrf: str
    signed_in_at: float
    seen_at: float


class Sessions:
    """Signed-in sessions by their random cookie value, ended by idleness or age."""

    def __init__(
        self, *, idle_seconds: float, max_seconds: float, monotonic: Monotonic = time.monotonic
    ) -> None:
        self._idle, self._max, self._monotonic = idle_seconds, max_seconds, monotonic
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self) -> tuple[str, Session]:
        now = self._monotonic()
        token = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), signed_in_at=now, seen_at=now)
        with self._lock:
            self._drop_expired(now)
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes: memory stays bounded
                oldest = min(self._sessions, key=lambda k: self._sessions[k].seen_at)
                del self._sessions[oldest]
            self._sessions[token] = session
        return token, session

    def touch(self, token: str | None) -> Session | None:
        """The live session of this cookie value (its idle clock restarted), else None."""
        if not token:
            return None
        now = self._monotonic()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if self._is_expired(session, now):
                del self._sessions[token]
                return None
            session.seen_at = now
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _is_expired(self, session: Session, now: float) -> bool:
        return now - session.seen_at > self._idle or now - session.signed_in_at > self._max

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if self._is_expired(s, now)]:
            del self._sessions[token]


def is_same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


@dataclass
class _Failures:
    count: int = 0
    last_at: float = 0.0


@dataclass
class SignInThrottle:
    """Failed sign-ins per source (and in all): past a few, each next try must wait twice as
    long as the one before; a try that comes too early is refused unchecked."""

    monotonic: Monotonic = time.monotonic
    _sources: dict[str, _Failures] = field(default_factory=dict)
    _recent: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, source: str) -> float:
        """How long `source` must still wait before its next try is checked (0: now)."""
        now = self.monotonic()
        with self._lock:
            self._forget(now)
            waits = [0.0]
            failures = self._sources.get(source)
            if failures and failures.count >= FREE_FAILURES:
                delay = min(2.0 ** (failures.count - FREE_FAILURES), MAX_DELAY_SECONDS)
                waits.append(failures.last_at + delay - now)
            if len(self._recent) >= GLOBAL_FAILURES:
                waits.append(self._recent[-1] + GLOBAL_DELAY_SECONDS - now)
            return max(waits)

    def record_failure(self, source: str) -> int:
        """Count a failed sign-in; returns the source's failures in a row."""
        now = self.monotonic()
        with self._lock:
            failures = self._sources.setdefault(source, _Failures())
            failures.count, failures.last_at = failures.count + 1, now
            self._recent.append(now)
            return failures.count

    def record_success(self, source: str) -> None:
        with self._lock:
            self._sources.pop(source, None)

    def _forget(self, now: float) -> None:
        cutoff = now - FAILURE_MEMORY_SECONDS
        self._recent = [t for t in self._recent if t > cutoff]
        for source in [s for s, f in self._sources.items() if f.last_at <= cutoff]:
            del self._sources[source]
