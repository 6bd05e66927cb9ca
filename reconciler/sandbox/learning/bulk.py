"""The 360Learning simulator's bulk group memberships: queued operations that run over time,
their status and per-input results, the 3-per-company concurrency limit and the bulk knobs.

Mixed into `LearningSimulator`; `_guard` advances the operations before every handler.
"""

from __future__ import annotations

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import _invalid, _json_body, _list_query, _paged, _Refusal
from reconciler.sandbox.learning.state import _OBJECT_ID, BODY_ROLES, LearningState

BULK_MAX_ITEMS = 20_000
BULK_MAX_CONCURRENT = 3
_UNFINISHED = frozenset({"pending", "queued", "running"})


class BulkMixin(LearningState):
    def occupy_bulk_slots(self, count: int) -> None:
        """`count` bulk operations of another integration start and run until
        `release_bulk_slots`: they count toward the 3 concurrent operations per company."""
        with self._lock:
            for _ in range(count):
                operation_id = self._next_id("b")
                self._operations[operation_id] = {
                    "_id": operation_id,
                    "type": "addUsersToGroups",
                    "createdAt": self._now_iso(),
                    "status": "running",
                    "input": [],
                    "results": [],
                    "created": self._clock(),
                    "foreign": True,
                }

    def release_bulk_slots(self) -> None:
        with self._lock:
            for operation in self._operations.values():
                if operation.get("foreign") and operation["status"] in _UNFINISHED:
                    operation.update(status="completed", endedAt=self._now_iso())

    # ---- bulk group memberships --------------------------------------------------------------
    # POST /api/v2/bulk/groups/memberships queues an operation (202 + Location); its status and
    # then its per-input results are read from /api/v2/bulk/operations/{id}[/results] [spec].
    # Sim decisions (the docs give no timings): an operation is `pending`, then `queued`, for
    # `bulk_start_seconds` in all, then `running` at `bulk_items_per_second`, each membership
    # taking effect as it is processed; at most 3 unfinished operations per company [docs].

    def _bulk_add_memberships(self, request: httpx.Request) -> httpx.Response:
        if self.bulk_disabled:
            # Sim decision: the spec gives the 503 `bulkAPIDisabled` but not its order against
            # validation; it comes after the token and scope checks, before the body is read.
            raise _Refusal(503, "bulkAPIDisabled", "The bulk API is temporarily disabled.")
        body = _json_body(request)
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _invalid("The input of a bulk operation must be an array.")
        if len(items) > BULK_MAX_ITEMS:
            raise _Refusal(
                400, "inputTooLong", f"The input array size exceeds {BULK_MAX_ITEMS:,} objects."
            )
        for item in items:
            # Sim decision: an item breaking the schema rejects the whole request (the spec
            # validates the body before queuing it).
            if (
                not isinstance(item, dict)
                or set(item) != {"userId", "groupId", "role"}
                or not all(
                    isinstance(item[k], str) and _OBJECT_ID.fullmatch(item[k])
                    for k in ("userId", "groupId")
                )
                or item["role"] not in BODY_ROLES
            ):
                raise _invalid("each input needs a userId, a groupId (ObjectIds) and a role")
        unfinished = [op for op in self._operations.values() if op["status"] in _UNFINISHED]
        if len(unfinished) >= BULK_MAX_CONCURRENT:
            raise _Refusal(
                429,
                "bulkOperationsConcurrencyLimitReached",
                "The maximum number of concurrent operations has been reached.",
            )
        operation_id = self._next_id("b")
        self._operations[operation_id] = {
            "_id": operation_id,
            "type": "addUsersToGroups",
            "createdAt": self._now_iso(),
            "status": "pending",
            "input": [dict(item) for item in items],
            "results": [],
            "created": self._clock(),
        }
        location = (
            f"{request.url.scheme}://{request.url.netloc.decode()}"
            f"/api/v2/bulk/operations/{operation_id}"
        )
        # Sim decision: the spec documents headers only for the 202, so the body is empty.
        return httpx.Response(202, headers={"Location": location})

    def _list_bulk_operations(self, request: httpx.Request) -> httpx.Response:
        filters, after = _list_query(request, {})
        return _paged(
            request,
            list(self._operations.values()),
            lambda op: op["_id"],
            self.bulk_operations_page_size,
            filters,
            after,
            self._shown_operation,
        )

    def _shown_operation(self, operation: Json) -> Json:
        hidden = ("input", "results", "created", "foreign")
        return {k: v for k, v in operation.items() if k not in hidden}

    def _get_bulk_operation(self, request: httpx.Request, operation_id: str) -> httpx.Response:
        operation = self._require_operation(operation_id)
        return httpx.Response(200, json=self._shown_operation(operation))

    def _get_bulk_results(self, request: httpx.Request, operation_id: str) -> httpx.Response:
        operation = self._require_operation(operation_id)
        if operation["status"] in _UNFINISHED:
            raise _Refusal(400, "bulkOperationNotRun", "The operation has not run yet.")
        return httpx.Response(200, json=operation["results"])

    def _require_operation(self, operation_id: str) -> Json:
        if operation_id not in self._operations:
            raise _Refusal(404, "bulkOperationNotFound", f"No bulk operation {operation_id}")
        return self._operations[operation_id]

    def _advance_bulk_operations(self) -> None:
        now = self._clock()
        for operation in self._operations.values():
            if operation["status"] not in _UNFINISHED or operation.get("foreign"):
                continue
            elapsed = now - operation["created"]
            if elapsed < self.bulk_start_seconds:
                if elapsed >= self.bulk_start_seconds / 2 and operation["status"] == "pending":
                    operation.update(status="queued", queuedAt=self._now_iso())
                continue
            if operation["status"] != "running":
                operation.setdefault("queuedAt", self._now_iso())
                operation.update(status="running", startedAt=self._now_iso())
            done = min(
                len(operation["input"]),
                int((elapsed - self.bulk_start_seconds) * self.bulk_items_per_second) + 1,
            )
            for item in operation["input"][len(operation["results"]) : done]:
                operation["results"].append(self._add_membership(item))
            operation["progress"] = {"index": max(0, done - 1), "updatedAt": self._now_iso()}
            if done == len(operation["input"]):
                operation.update(status="completed", endedAt=self._now_iso())

    def _add_membership(self, item: Json) -> Json:
        user = self._users.get(item["userId"])
        error = (
            "userNotFound"
            if user is None
            else "userDeleted"
            if user["status"] == "deleted"
            else "groupNotFound"
            if item["groupId"] not in self.groups
            else "analystUnavailable"
            if item["role"] == "analyst" and not self.analyst_enabled
            else None
        )
        if error is not None:
            # Sim decision: the error message is the code the single-item endpoint answers.
            return {"input": item, "status": "error", "errorMessage": error}
        self._roles[item["userId"]].add((item["groupId"], item["role"]))
        return {"input": item, "status": "success", "resourceId": item["userId"]}

    def finish_bulk_operations(self) -> None:
        """Test helper: let every queued bulk operation run to its end now."""
        with self._lock:
            for operation in self._operations.values():
                operation["created"] = self._clock() - 10**9
            speed, self.bulk_items_per_second = self.bulk_items_per_second, 500.0
            self._advance_bulk_operations()
            self.bulk_items_per_second = speed
