"""360Learning groups and memberships: group roles, the platform group, bulk membership jobs
(started, followed, read back when unknown) and the probes of the credential's scopes.

Part of `LearningClient` (through `LearningGroups`); `add_memberships` is what apply calls to add
many memberships, in bulk when it may, else one call each. It decides nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.clients.learning_api import _NO_BODY, SERVICE, LearningApi, _segment, _user_path
from reconciler.core.models import GroupRole
from reconciler.errors import ApiAuthFailed, ApiRejected, ApiUnavailable

BULK_MAX_ITEMS = 20_000  # per bulk job [spec]
# Bulk jobs are polled from 1 s, then every 1.5x longer up to 10 s (no documented cadence).
BULK_FIRST_POLL_SECONDS, BULK_LONGEST_POLL_SECONDS = 1.0, 10.0
BULK_QUEUE_SECONDS, BULK_ITEMS_PER_SECOND_FLOOR = 120.0, 10.0
"""A job is followed for 2 minutes in the queue plus its items at the write limit (10/s):
past that, bulk is slower than one call each and something is wrong."""
NO_SUCH_USER_ID = "000000000000000000000000"
BULK_MEMBERSHIPS_PATH = "/api/v2/bulk/groups/memberships"
BULK_OPERATIONS_PATH = "/api/v2/bulk/operations"
BULK_REFUSALS = frozenset({"bulkOperationsConcurrencyLimitReached", "bulkAPIDisabled"})
"""429 and 503 codes [bulk spec] meaning the job was not taken: add one by one instead."""
# Write requests with an empty body: invalid for every one of them, so nothing is created.
SCOPE_PROBES = {
    "users:write": ("POST", "/api/v2/users?sendInvitationEmail=false"),
    "externalIds:write": ("POST", "/api/v2/external-ids"),
    "groups:bulk": ("POST", "/api/v2/bulk/groups/memberships"),
}


class LearningGroups(LearningApi):
    """Groups, group roles and bulk membership jobs; the probes of the credential's scopes."""

    def list_user_roles(self, learning_user_id: str) -> list[GroupRole]:
        path = _user_path(learning_user_id) + "/roles"
        return [
            GroupRole(group_id=item["groupId"], role=item["role"])
            for item in self._paginate(path, "users:read")
        ]

    def list_group_roles(self, group_id: str) -> list[tuple[str, str]]:
        """Every membership of one group as (user id, role), 1,000 per page."""
        path = f"/api/v2/groups/{_segment(group_id)}/roles"
        return [
            (str(item["userId"]), str(item["role"])) for item in self._paginate(path, "groups:read")
        ]

    def find_platform_group_id(self) -> str:
        """The platform group (the root, which has no parentId), walking up from the default
        group; cached for the client's life."""
        if self._platform_group_id is None:
            group_id, seen = self._settings.default_group_id, set()
            while group_id not in seen:
                seen.add(group_id)
                group = self.get_group(group_id)
                parent = (group or {}).get("parentId")
                if not parent:
                    break
                group_id = str(parent)
            self._platform_group_id = group_id
        return self._platform_group_id

    def add_group_role(self, group_id: str, role: str, learning_user_id: str) -> None:
        self._call("POST", _role_path(group_id, role, learning_user_id), "groups:write")

    def remove_group_role(self, group_id: str, role: str, learning_user_id: str) -> None:
        self._call("DELETE", _role_path(group_id, role, learning_user_id), "groups:write")

    def may_use_bulk(self) -> bool:
        """Whether bulk jobs may be started: not refused yet, and bulkOperations:read granted
        (tested once, with one page of the operations list): a job nobody can follow would
        leave its memberships unknown, so without it none is started."""
        if self.is_bulk_granted is None and not self._is_bulk_read_checked:
            self._is_bulk_read_checked = True
            if not self.probe_read_scope(BULK_OPERATIONS_PATH, "bulkOperations:read"):
                self.is_bulk_granted = False
        return self.is_bulk_granted is not False

    def probe_read_scope(self, path: str, scope: str) -> bool:
        """True when a read of `path` (one page) is allowed, False on 403; changes nothing."""
        try:
            self._call("GET", path, scope, allow_404=True)
        except ApiAuthFailed as exc:
            if exc.status == 403:
                return False
            raise
        return True

    def start_bulk_memberships(self, chunk: Sequence[Membership]) -> str | None:
        """Queue one bulk job adding `chunk` (scope groups:bulk); the operation's path, or None
        when 360Learning did not take it (no groups:bulk scope, which is remembered, its
        concurrency limit, the bulk API disabled): nothing was written then."""
        body = {
            "input": [
                {"userId": m.learning_user_id, "groupId": m.group_id, "role": m.role} for m in chunk
            ]
        }
        try:
            response = self._call(
                "POST", BULK_MEMBERSHIPS_PATH, "groups:bulk", body=body, final_codes=BULK_REFUSALS
            )
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            self.is_bulk_granted = False
            return None
        except (ApiRejected, ApiUnavailable) as exc:
            if exc.code not in BULK_REFUSALS:
                raise
            # Another integration's jobs or a pause of the bulk API: one call each instead,
            # and no slower pacer (this 429 is no rate limit).
            return None
        operation_url = self._same_host_path(response, response.headers.get("location"))
        if operation_url is None:
            raise ApiRejected(
                SERVICE,
                response.status_code,
                "noOperationLocation",
                "bulk request answered without an operation Location",
            )
        return operation_url

    def follow_bulk_memberships(
        self, operation_url: str, chunk: Sequence[Membership]
    ) -> dict[Membership, str | None]:
        """The error of each membership of an accepted job (None: added). A job that cannot be
        followed (bulkOperations:read revoked) or outlives its deadline is never redone one by
        one: the memberships are read back, and those not there are reported."""
        deadline = _Deadline(bulk_poll_deadline_seconds(len(chunk)), self._clock, self._sleep)
        try:
            operation = self._wait_for_operation(operation_url, deadline)
            if operation is not None:
                results = self._call("GET", operation_url + "/results", "bulkOperations:read")
                return _bulk_outcome(chunk, results.json(), operation)
            why = "did not end within its deadline"
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            why = "could not be followed (bulkOperations:read refused)"
        return self._read_back_memberships(chunk, f"bulk operation {why}", deadline)

    def _wait_for_operation(self, path: str, deadline: _Deadline) -> dict[str, Any] | None:
        """The ended operation, or None once `deadline` has passed."""
        wait = BULK_FIRST_POLL_SECONDS
        while True:
            deadline.sleep(wait)
            operation = self._call("GET", path, "bulkOperations:read").json()
            if not isinstance(operation, dict):
                raise ApiRejected(
                    SERVICE, 200, "unexpectedResponse", "bulk operation is not an object"
                )
            if operation.get("status") in ("completed", "error"):
                return operation
            if deadline.has_passed():
                return None
            wait = min(wait * 1.5, BULK_LONGEST_POLL_SECONDS)

    def _read_back_memberships(
        self, chunk: Sequence[Membership], why: str, deadline: _Deadline
    ) -> dict[Membership, str | None]:
        """Which memberships of a job whose outcome is unknown are there, read with each
        user's roles (reads, never writes), again until `deadline` while the job may run."""
        outcome: dict[Membership, str | None] = {}
        pending = list(dict.fromkeys(chunk))
        wait = BULK_FIRST_POLL_SECONDS
        while True:
            missing = []
            for user_id in dict.fromkeys(m.learning_user_id for m in pending):
                roles = {(r.group_id, r.role) for r in self.list_user_roles(user_id)}
                for m in (m for m in pending if m.learning_user_id == user_id):
                    if (m.group_id, m.role) in roles:
                        outcome[m] = None
                    else:
                        missing.append(m)
            pending = missing
            if not pending or deadline.has_passed():
                break
            deadline.sleep(wait)
            wait = min(wait * 1.5, BULK_LONGEST_POLL_SECONDS)
        for m in pending:
            outcome[m] = f"{why}; the membership is not there yet (the next pass plans it again)"
        return outcome

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        """One group (`_id`, `name`, ...), or None when 360Learning does not know it."""
        response = self._call(
            "GET", f"/api/v2/groups/{_segment(group_id)}", "groups:read", allow_404=True
        )
        return None if response.status_code == 404 else response.json()

    def probe_write_scope(self, scope: str) -> bool:
        """True when the credential holds the write `scope`, False on 403; changes nothing.

        Sends a write that cannot succeed (an empty body, or a user id no one has), so a
        granted scope ends in 400/404 from validation, which runs after the scope check.
        """
        if scope == "groups:write":
            group_id = self._settings.default_group_id
            method, url, body = "POST", _role_path(group_id, "learner", NO_SUCH_USER_ID), _NO_BODY
        else:
            method, url = SCOPE_PROBES[scope]
            body = {}
        try:
            self._call(method, url, scope, body=body, final_codes=BULK_REFUSALS)
        except ApiRejected:
            return True
        except ApiUnavailable as exc:
            if exc.code in BULK_REFUSALS:  # answered after the scope check: it is granted
                return True
            raise
        except ApiAuthFailed as exc:
            if exc.status == 403:
                return False
            raise
        return True


def bulk_poll_deadline_seconds(items: int) -> float:
    """Pure: how long a bulk job of `items` memberships is followed: as long as adding them
    one by one at the company's 10 writes/s would take, plus BULK_QUEUE_SECONDS in the queue."""
    return BULK_QUEUE_SECONDS + items / BULK_ITEMS_PER_SECOND_FLOOR


class _Deadline:
    """A budget of seconds for a loop that waits: spent by the clock or by the waits it made,
    whichever says more (a test's sleep may not move the clock)."""

    def __init__(
        self, seconds: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._seconds, self._clock, self._sleep = seconds, clock, sleep
        self._started, self._waited = clock(), 0.0

    def _spent(self) -> float:
        return max(self._clock() - self._started, self._waited)

    def has_passed(self) -> bool:
        return self._spent() >= self._seconds

    def sleep(self, seconds: float) -> None:
        wait = max(0.0, min(seconds, self._seconds - self._spent()))
        self._waited += wait
        self._sleep(wait)


@dataclass(frozen=True)
class Membership:
    """One role of one 360Learning user in one group (role as in bodies: learner, ...)."""

    learning_user_id: str
    group_id: str
    role: str


def add_memberships(
    client: LearningGroups, memberships: Sequence[Membership]
) -> dict[Membership, str | None]:
    """Add memberships in bulk jobs when the credential may run and follow them (groups:bulk
    and bulkOperations:read), else one call each.

    Returns the error of each membership (None when added). A membership is written once: only
    those of a job 360Learning did not take (scope, concurrency limit, bulk API disabled) go
    one by one; a job it took is followed, or read back, never redone.
    """
    unique = list(dict.fromkeys(memberships))
    outcome: dict[Membership, str | None] = {}
    one_by_one: list[Membership] = []
    if unique and client.may_use_bulk():
        for start in range(0, len(unique), BULK_MAX_ITEMS):
            chunk = unique[start : start + BULK_MAX_ITEMS]
            operation_url = client.start_bulk_memberships(chunk) if not one_by_one else None
            if operation_url is None:
                one_by_one.extend(chunk)
                continue
            client.is_bulk_granted = True
            outcome.update(client.follow_bulk_memberships(operation_url, chunk))
    else:
        one_by_one = unique
    for membership in one_by_one:
        try:
            client.add_group_role(membership.group_id, membership.role, membership.learning_user_id)
            outcome[membership] = None
        except ApiRejected as exc:
            outcome[membership] = str(exc)
    return outcome


def _bulk_outcome(
    chunk: Sequence[Membership], results: Any, operation: Mapping[str, Any]
) -> dict[Membership, str | None]:
    by_input: dict[Membership, str | None] = {}
    for result in results if isinstance(results, list) else []:
        item = result.get("input") if isinstance(result, dict) else None
        if not isinstance(item, dict):
            continue
        key = Membership(str(item.get("userId")), str(item.get("groupId")), str(item.get("role")))
        ok = result.get("status") == "success"
        by_input[key] = None if ok else str(result.get("errorMessage") or "bulk item failed")
    ended = f"bulk operation ended {operation.get('status')}"
    if operation.get("errorMessage"):
        ended += f": {operation['errorMessage']}"
    # An input the operation never reached (it stopped in error) was not added.
    return {m: by_input[m] if m in by_input else ended for m in chunk}


def _role_path(group_id: str, role: str, learning_user_id: str) -> str:
    # Bodies say userAdmin, this path segment says user-admin.
    path_role = "user-admin" if role == "userAdmin" else role
    return f"/api/v2/groups/{_segment(group_id)}/{_segment(path_role)}/{_segment(learning_user_id)}"
