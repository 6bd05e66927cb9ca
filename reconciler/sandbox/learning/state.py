"""The 360Learning simulator's company state: users, groups, roles, manager links, external ids,
bulk operations and custom fields, with the helpers every resource module shares.

`LearningState` is the base of the resource mixins (users, groups, external ids, bulk, auth,
custom fields) that `simulator.LearningSimulator` assembles. Its test and demo helpers edit the
state directly: no HTTP, no rate limits, no request log.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from reconciler.sandbox.documents import Json
from reconciler.sandbox.faults import Faults
from reconciler.sandbox.learning.http import _invalid, _Refusal

PROVISIONING_SCOPES = frozenset(
    {
        "users:read",
        "users:write",
        "groups:read",
        "groups:write",
        "groups:bulk",
        "bulkOperations:read",
        "customFields:read",
        "customFields:write",
        "externalIds:read",
        "externalIds:write",
    }
)
BODY_ROLES = frozenset(
    {"admin", "analyst", "editor", "coach", "contributor", "learner", "userAdmin"}
)
_OBJECT_ID = re.compile(r"[a-fA-F0-9]{24}")
REAL_LIFETIME: Any = object()
"""`advertised_expires_in` that tells the token's real lifetime (the default)."""


class LearningState:
    """One 360Learning company's state; the resource mixins add its HTTP handlers."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        scopes: set[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        enforce_rate_limits: bool = True,
        token_lifetime_seconds: int = 3600,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.scopes = set(PROVISIONING_SCOPES if scopes is None else scopes)
        self.token_lifetime_seconds = token_lifetime_seconds
        # The docs' example sends "3600" (a string) while the spec types it as a number.
        self.expires_in_as_string = True
        # The other reading of the listing: deleted users included without a status filter.
        self.lists_deleted_by_default = False
        # Sim decision: a token answer may advertise a lifetime other than the token's real one
        # (0, negative, null, garbage; a value JSON cannot hold leaves it out), as issue 15's
        # soak met. The docs only say tokens live 1 hour.
        self.advertised_expires_in: Any = REAL_LIFETIME
        self.enforce_rate_limits = enforce_rate_limits
        self.write_limit_per_second, self.read_limit_per_second = 10, 50
        self.page_size, self.groups_page_size = 500, 500
        self.managers_page_size = self.roles_page_size = 1000
        self.external_ids_page_size = 5000
        self.usernames_allowed, self.analyst_enabled = True, True
        self.reserved_platform_names: set[str] = set()
        self.faults = Faults(sleep=sleep)
        self.requests: list[tuple[str, str, int]] = []
        self.invitations_sent: list[str] = []
        self.rate_limited_count = 0
        self.groups: dict[str, Json] = {}
        self._clock, self._now = clock, now
        self._lock = threading.RLock()
        self._counter = 0
        self._tokens: dict[str, float] = {}
        self._hits: dict[str, deque[float]] = {"read": deque(), "write": deque()}
        self._users: dict[str, Json] = {}
        self._roles: dict[str, set[tuple[str, str]]] = {}
        self._managers: dict[str, set[str]] = {}
        self._mappings: dict[str, Json] = {}
        # Bulk operations (see the bulk section): how fast the platform works through them.
        self.bulk_start_seconds, self.bulk_items_per_second = 1.0, 500.0
        self.bulk_operations_page_size = 20  # [spec]
        # The documented 503 "bulk API temporarily disabled" on every bulk write.
        self.bulk_disabled = False
        self._operations: dict[str, Json] = {}
        self._custom_fields: dict[str, Json] = {}
        self._authorized: dict[str, list[str]] = {}
        self._custom_values: dict[str, dict[str, str]] = {}  # user id -> field id -> value
        self._seed()

    def _seed(self) -> None:
        self.root_group_id = self.add_group("Sandbox Company")
        self.sales_group_id = self.add_group("Sales", self.root_group_id)
        self.engineering_group_id = self.add_group("Engineering", self.root_group_id)
        self.leadership_group_id = self.add_group("Leadership", self.root_group_id, public=False)
        self.owner_id = self.seed_user(
            "owner@sandbox.test",
            firstName="Platform",
            lastName="Owner",
            roles={(self.root_group_id, "owner")},
        )

    # ---- state helpers -----------------------------------------------------------------------

    def _next_id(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}{self._counter:023x}"

    def _now_iso(self) -> str:
        return _iso(self._now())

    def _public(self, user: Json) -> Json:
        return {
            name: list(value) if isinstance(value, list) else value
            for name, value in user.items()
            if value not in (None, [])
        }

    def _user_by(self, field: str, value: str | None) -> Json | None:
        if value is None:
            return None
        fold = (lambda s: s.lower() if isinstance(s, str) else s) if field == "mail" else None
        wanted = fold(value) if fold else value
        return next(
            (
                u
                for u in self._users.values()
                if (fold(u.get(field)) if fold else u.get(field)) == wanted
            ),
            None,
        )

    def _require_user(self, user_id: str) -> Json:
        if user_id not in self._users:
            raise _Refusal(404, "userNotFound", f"No user {user_id}")
        return self._users[user_id]

    def _check_deactivation_date(self, value: str | None) -> None:
        if value is not None and _parse_datetime(value) <= self._now():
            raise _Refusal(400, "deactivationDateInvalid", "toBeDeactivatedAt must be future")

    def _insert_user(self, fields: Json, status: str) -> Json:
        user = {"_id": self._next_id("b"), "status": status, "lang": "en", **fields}
        self._users[user["_id"]] = user
        self._roles[user["_id"]] = set()
        self._managers[user["_id"]] = set()
        return user

    def _soft_delete(self, user: Json, at: str) -> None:
        user["status"] = "deleted"
        user.pop("toBeDeactivatedAt", None)
        user.setdefault("deletedAt", []).append(at)
        self._roles[user["_id"]].clear()

    def _apply_due_deactivations(self) -> None:
        # Sim decision: a scheduled deactivation takes effect at its exact instant (the help
        # centre hints at day granularity, unconfirmed), stamped with the scheduled time.
        now = self._now()
        for user in self._users.values():
            due = user.get("toBeDeactivatedAt")
            if due and user["status"] != "deleted" and _parse_datetime(due) <= now:
                self._soft_delete(user, due)

    def _check_role_available(self, role: str) -> None:
        if role == "analyst" and not self.analyst_enabled:
            raise _Refusal(400, "analystUnavailable", "The analyst role is not enabled")

    # ---- test and demo helpers (no HTTP, no rate limits, no request log) ---------------------

    def add_group(self, name: str, parent_id: str | None = None, public: bool = True) -> str:
        with self._lock:
            group_id = self._next_id("a")
            group: Json = {"_id": group_id, "name": name, "public": public}
            if parent_id is not None:
                group["parentId"] = parent_id
            self.groups[group_id] = group
            return group_id

    def seed_user(
        self,
        mail: str | None,
        status: str = "active",
        *,
        roles: Iterable[tuple[str, str]] | None = None,
        **attrs: Any,
    ) -> str:
        """A user made by hand or by another integration; default role: learner in the root."""
        with self._lock:
            fields = {name: value for name, value in attrs.items() if value is not None}
            if mail is not None:
                fields["mail"] = mail
            user = self._insert_user(fields, "active" if status == "deleted" else status)
            user_id: str = user["_id"]  # made by `_next_id`
            if status == "deleted":
                self._soft_delete(user, self._now_iso())
            else:
                self._roles[user_id].update(
                    roles if roles is not None else {(self.root_group_id, "learner")}
                )
            return user_id

    def user(self, user_id: str) -> Json:
        with self._lock:
            self._apply_due_deactivations()
            return self._public(self._users[user_id])

    def users_by_mail(self) -> dict[str, Json]:
        with self._lock:
            self._apply_due_deactivations()
            return {u["mail"]: self._public(u) for u in self._users.values() if "mail" in u}

    def managers_of(self, user_id: str) -> set[str]:
        with self._lock:
            return set(self._managers[user_id])

    def roles_of(self, user_id: str) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._roles[user_id])

    def external_ids(self) -> list[Json]:
        with self._lock:
            return [dict(m) for m in self._mappings.values()]

    def edit_user(self, user_id: str, **fields: Any) -> None:
        """A hand-made change in the 360Learning UI; `None` removes a field."""
        with self._lock:
            user = self._users[user_id]
            for name, value in fields.items():
                if value is None:
                    user.pop(name, None)
                else:
                    user[name] = value

    def delete_user(self, user_id: str) -> None:
        """A hand-made soft delete (same effects as DELETE /api/v2/users/{id})."""
        with self._lock:
            if self._users[user_id]["status"] != "deleted":
                self._soft_delete(self._users[user_id], self._now_iso())

    def add_manager(self, user_id: str, manager_id: str) -> None:
        with self._lock:
            self._managers[user_id].add(manager_id)

    def add_role(self, user_id: str, group_id: str, role: str) -> None:
        with self._lock:
            self._roles[user_id].add((group_id, role))

    def add_external_id(
        self, platform: str, target_id: str, value: str, target_type: str = "user"
    ) -> str:
        with self._lock:
            mapping = {
                "_id": self._next_id("e"),
                "platform": platform,
                "targetType": target_type,
                "targetId": target_id,
                "value": value,
            }
            self._mappings[mapping["_id"]] = mapping
            return mapping["_id"]


def _parse_datetime(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(f"{value!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise _invalid(f"{value!r} has no time zone (expected UTC, e.g. ...Z)")
    return parsed.astimezone(UTC)


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
