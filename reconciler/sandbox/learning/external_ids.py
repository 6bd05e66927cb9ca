"""The 360Learning simulator's external ids: mappings of a user or group to a value on another
platform (create, list, replace, delete), unique per platform and target type.

Mixed into `LearningSimulator`.
"""

from __future__ import annotations

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import (
    _ALL_OPS,
    _invalid,
    _json_body,
    _list_query,
    _paged,
    _passes,
    _Refusal,
)
from reconciler.sandbox.learning.state import _OBJECT_ID, LearningState

TARGET_TYPES = frozenset(
    "attempt classroom classroomAttendance classroomAttendanceSheet classroomSlot "
    "classroomSlotRegistration course group learningNeed path pathEnrollment pathSession "
    "pathTracking registrationRequest user".split()
)
_MAPPING_FIELDS = ("platform", "targetType", "targetId", "value")
_MAPPING_FILTERS = {"platform": _ALL_OPS, "type": _ALL_OPS, "value": _ALL_OPS, "targetId": _ALL_OPS}


class ExternalIdsMixin(LearningState):
    # ---- external ids ------------------------------------------------------------------------

    def _create_external_id(self, request: httpx.Request) -> httpx.Response:
        fields = self._validated_mapping(_json_body(request))
        self._check_mapping_conflicts(fields, exclude=None, taken_code="mappingAlreadyExists")
        mapping = {"_id": self._next_id("e"), **fields}
        self._mappings[mapping["_id"]] = mapping
        return httpx.Response(201, json=dict(mapping))

    def _replace_external_id(self, request: httpx.Request, mapping_id: str) -> httpx.Response:
        mapping = self._require_mapping(mapping_id)
        fields = self._validated_mapping(_json_body(request))
        self._check_mapping_conflicts(fields, exclude=mapping_id, taken_code="targetAlreadyMapped")
        mapping.update(fields)
        return httpx.Response(200, json=dict(mapping))

    def _delete_external_id(self, request: httpx.Request, mapping_id: str) -> httpx.Response:
        mapping = self._require_mapping(mapping_id)
        if mapping["platform"] in self.reserved_platform_names:
            raise _Refusal(400, "reservedPlatformName", "The platform is reserved")
        del self._mappings[mapping_id]
        return httpx.Response(204)

    def _list_external_ids(self, request: httpx.Request) -> httpx.Response:
        filters, after = _list_query(request, _MAPPING_FILTERS)
        rows = [
            m
            for m in self._mappings.values()
            if all(
                _passes(m["targetType" if field == "type" else field], ops, fold=False)
                for field, ops in filters.items()
            )
        ]
        return _paged(
            request, rows, lambda m: m["_id"], self.external_ids_page_size, filters, after, dict
        )

    def _validated_mapping(self, body: object) -> Json:
        if not isinstance(body, dict) or set(body) != set(_MAPPING_FIELDS):
            raise _invalid(f"Body must hold exactly {', '.join(_MAPPING_FIELDS)}")
        if not all(isinstance(body[name], str) and body[name] for name in _MAPPING_FIELDS):
            raise _invalid("Every field must be a non-empty string")
        if body["targetType"] not in TARGET_TYPES or not _OBJECT_ID.fullmatch(body["targetId"]):
            raise _invalid("Invalid targetType or targetId")
        if body["platform"] in self.reserved_platform_names:
            raise _Refusal(400, "reservedPlatformName", "The platform is reserved")
        targets = {"user": self._users, "group": self.groups}.get(body["targetType"], {})
        if body["targetId"] not in targets:
            raise _Refusal(404, "resourceNotFound", "The target does not exist")
        return {name: body[name] for name in _MAPPING_FIELDS}

    def _check_mapping_conflicts(self, fields: Json, exclude: str | None, taken_code: str) -> None:
        # Sim decision: uniqueness is per (platform, targetType): one value per target and
        # one target per value.
        for other in self._mappings.values():
            if other["_id"] == exclude or (other["platform"], other["targetType"]) != (
                fields["platform"],
                fields["targetType"],
            ):
                continue
            if other["targetId"] == fields["targetId"]:
                raise _Refusal(400, taken_code, "The target already has an id on this platform")
            if other["value"] == fields["value"]:
                raise _Refusal(400, "valueAlreadyUsed", "The value is used by another target")

    def _require_mapping(self, mapping_id: str) -> Json:
        if mapping_id not in self._mappings:
            raise _Refusal(404, "mappingIdNotFound", f"No mapping {mapping_id}")
        return self._mappings[mapping_id]
