"""Removes configured secrets and tokens from text that came from outside, and caps its length.

The clients remember what they hold when built (`remember_secrets`, from their settings) and
the bearer tokens they obtain (`remember_token`). `api.py` redacts error text at the source;
`logs.RedactingFilter` is the second net. Process-wide on purpose, as the logging it guards is.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6
"""Shorter values are not redacted as substrings: they would mangle ordinary words."""
MAX_SECRETS = 1024
MAX_TOKENS = 16
"""Bearer tokens are replaced hourly; the last few cover any still in flight."""


class SecretRegistry:
    """The values to redact and one compiled pattern over them (and their escaped forms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}  # insertion-ordered set: the oldest go first
        self._tokens: deque[str] = deque(maxlen=MAX_TOKENS)
        self._pattern: re.Pattern[str] | None = None

    def remember(self, *values: str, is_token: bool = False) -> None:
        fresh = [
            v
            for v in values
            if len(v) >= MIN_SECRET_CHARS and v not in self._secrets and v not in self._tokens
        ]
        if not fresh:
            return
        with self._lock:
            for value in fresh:
                if is_token:
                    self._tokens.append(value)
                    continue
                self._secrets[value] = None
                if len(self._secrets) > MAX_SECRETS:
                    del self._secrets[next(iter(self._secrets))]
            self._pattern = None

    def redact(self, text: str, max_chars: int | None = None) -> str:
        """`text` with every known secret replaced, then cut to `max_chars` (redact first, so
        the cut can never leave half a secret behind)."""
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        if max_chars is not None and len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        return text

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and (self._secrets or self._tokens):
                forms = {
                    form
                    for value in [*self._secrets, *self._tokens]
                    for form in _escaped_forms(value)
                }
                # Longest first, so a secret containing another is removed whole.
                ordered = sorted(forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
            return self._pattern


def _escaped_forms(value: str) -> set[str]:
    """How an echo may spell the value: raw, JSON-escaped, URL- or form-encoded."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
    }


SECRETS = SecretRegistry()


def remember_secrets(*values: str) -> None:
    """Register configured credentials (empty and very short values are skipped)."""
    SECRETS.remember(*values)


def remember_token(value: str) -> None:
    """Register a bearer token obtained at run time."""
    SECRETS.remember(value, is_token=True)


def redact(text: str, max_chars: int | None = None) -> str:
    """`text` without any remembered secret, at most `max_chars` long."""
    return SECRETS.redact(text, max_chars)
