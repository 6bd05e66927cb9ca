"""The Hibob simulator's rate limits and WAF: a fixed one-minute window per endpoint family
with its X-RateLimit headers, and the block of an Authorization header after repeated 401s.

Mixed into `HibobSimulator`, whose `_answer` calls `_quota` and `_count_auth_failure`.
"""

from __future__ import annotations

import math
from collections import deque

from reconciler.sandbox.hibob.employees import EmployeeStore

WINDOW_SECONDS = 60
WAF_THRESHOLD, WAF_WINDOW_SECONDS, WAF_BLOCK_SECONDS = 50, 10.0, 300.0


class LimitsMixin(EmployeeStore):
    def _quota(self, bucket: str, now: float, take: bool) -> tuple[bool, dict[str, str]]:
        """Fixed one-minute window per endpoint, opened by its first request."""
        limit = getattr(self, f"{bucket}_limit_per_minute", 50)
        start, used = self._windows.get(bucket, (now, 0))
        if now >= start + WINDOW_SECONDS:
            start, used = now, 0
        allowed = used < limit
        if take and allowed:
            used += 1
            self._windows[bucket] = (start, used)
        return allowed, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - used),
            "X-RateLimit-Reset": str(math.ceil(start + WINDOW_SECONDS)),
        }

    def _count_auth_failure(self, auth: str, now: float) -> None:
        """WAF: >= 50 401s with one Authorization header within 10 s blocks it for 5 minutes."""
        failures = self._auth_failures.setdefault(auth, deque())
        failures.append(now)
        while failures and failures[0] <= now - WAF_WINDOW_SECONDS:
            failures.popleft()
        if len(failures) >= WAF_THRESHOLD:
            self._blocked_until[auth] = now + WAF_BLOCK_SECONDS
            failures.clear()
