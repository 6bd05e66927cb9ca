"""360Learning users: list, find, create, update, activate and deactivate them; their managers,
external ids and custom-field values.

Part of `LearningClient` (through `LearningUsers`), called by the passes; it performs only the
calls asked of it and decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from reconciler.clients.learning_api import (
    SERVICE,
    LearningApi,
    _parse_user,
    _query,
    _segment,
    _user_path,
)
from reconciler.core.models import LearningUser
from reconciler.errors import ApiRejected

MAILS_PER_QUERY = 50
# A mail that cannot exist: check_access reads with it to test users:read cheaply.
ACCESS_CHECK_MAIL = "access-check@reconciler.invalid"


class LearningUsers(LearningApi):
    """Users, their managers, external ids and custom-field values."""

    # Users

    def list_users(
        self, *, status: str | None = None, mails: Sequence[str] | None = None
    ) -> Iterator[LearningUser]:
        """Every user matching the filters, following `Link: rel="next"` pages."""
        base = [("status[eq]", status)] if status else []
        if mails is None:
            yield from self._iter_users(base)
            return
        unique = list(dict.fromkeys(mails))
        for start in range(0, len(unique), MAILS_PER_QUERY):
            chunk = unique[start : start + MAILS_PER_QUERY]
            yield from self._iter_users(base + [("mail[in]", mail) for mail in chunk])

    def list_users_with_deleted(
        self, *, mails: Sequence[str] | None = None
    ) -> Iterator[LearningUser]:
        """Every user matching `mails`, deleted ones too. Whether the default listing includes
        deleted users is undocumented, so they are asked for with `status[eq]=deleted` as
        well (a user both answers return is yielded once)."""
        seen: set[str] = set()
        for status in (None, "deleted"):
            for user in self.list_users(status=status, mails=mails):
                if user.learning_user_id not in seen:
                    seen.add(user.learning_user_id)
                    yield user

    def find_users_by_mail(self, mail: str) -> list[LearningUser]:
        return list(self._iter_users([("mail[eq]", mail)]))

    def get_user(self, learning_user_id: str) -> LearningUser | None:
        response = self._call("GET", _user_path(learning_user_id), "users:read", allow_404=True)
        return None if response.status_code == 404 else _parse_user(response.json())

    def create_user(
        self,
        attributes: Mapping[str, Any],
        *,
        group_id: str,
        role: str,
        send_invitation_email: bool,
    ) -> tuple[LearningUser, bool]:
        """Create an invited user; (user, True) when 360Learning restored a deleted one (200)."""
        body = {key: value for key, value in attributes.items() if value is not None}
        body["membership"] = {"groupId": group_id, "role": role}
        flag = "true" if send_invitation_email else "false"
        response = self._call(
            "POST", f"/api/v2/users?sendInvitationEmail={flag}", "users:write", body=body
        )
        return _parse_user(response.json()), response.status_code == 200

    def update_user(self, learning_user_id: str, changes: Mapping[str, Any]) -> LearningUser:
        """PATCH only `changes`; a None value is sent as null, which clears the attribute."""
        response = self._call(
            "PATCH", _user_path(learning_user_id), "users:write", body=dict(changes)
        )
        return _parse_user(response.json())

    def activate_user(self, learning_user_id: str) -> LearningUser:
        path = _user_path(learning_user_id) + "/activate"
        return _parse_user(self._call("PUT", path, "users:write").json())

    def deactivate_user(self, learning_user_id: str) -> None:
        """Soft delete (status becomes deleted); a later create with the same mail restores it."""
        self._call("DELETE", _user_path(learning_user_id), "users:write")

    # Managers

    def list_managers(self, learning_user_id: str) -> list[str]:
        path = _user_path(learning_user_id) + "/managers"
        return [str(manager_id) for manager_id in self._paginate(path, "users:read")]

    def list_subordinates(self, learning_user_id: str) -> list[str]:
        path = _user_path(learning_user_id) + "/subordinates"
        return [str(user_id) for user_id in self._paginate(path, "users:read")]

    def add_manager(self, learning_user_id: str, manager_id: str) -> None:
        self._call("POST", _manager_path(learning_user_id, manager_id), "users:write")

    def remove_manager(self, learning_user_id: str, manager_id: str) -> None:
        self._call("DELETE", _manager_path(learning_user_id, manager_id), "users:write")

    # External ids

    def create_external_id(self, platform: str, learning_user_id: str, value: str) -> None:
        body = {
            "platform": platform,
            "targetType": "user",
            "targetId": learning_user_id,
            "value": value,
        }
        self._call("POST", "/api/v2/external-ids", "externalIds:write", body=body)

    def find_external_id(self, platform: str, value: str) -> dict[str, Any] | None:
        """The user mapping of `value` on `platform` (`_id`, `targetId`, ...), if any."""
        path = "/api/v2/external-ids?" + _query(
            [("platform[eq]", platform), ("type[eq]", "user"), ("value[eq]", value)]
        )
        for item in self._paginate(path, "externalIds:read"):
            if isinstance(item, dict) and item.get("_id") and item.get("targetId"):
                return item
        return None

    def replace_external_id(
        self, mapping_id: str, platform: str, learning_user_id: str, value: str
    ) -> None:
        """Point an existing mapping at another account (PUT replaces the whole mapping)."""
        body = {
            "platform": platform,
            "targetType": "user",
            "targetId": learning_user_id,
            "value": value,
        }
        self._call(
            "PUT", f"/api/v2/external-ids/{_segment(mapping_id)}", "externalIds:write", body=body
        )

    def list_external_ids(self, platform: str) -> dict[str, str]:
        """value -> learning user id for every user mapping on `platform`."""
        path = "/api/v2/external-ids?" + _query([("platform[eq]", platform), ("type[eq]", "user")])
        return {
            str(item["value"]): str(item["targetId"])
            for item in self._paginate(path, "externalIds:read")
            if item.get("targetType", "user") == "user"
        }

    # Custom fields (api/360learning.md §4)

    def list_custom_fields(self) -> list[dict[str, Any]]:
        """Every user custom-field definition: `_id`, `name`, `targetType`, `type`."""
        path = "/api/v2/custom-fields?" + _query([("targetType[eq]", "users")])
        return [f for f in self._paginate(path, "customFields:read") if isinstance(f, dict)]

    def list_authorized_values(self, custom_field_id: str) -> list[str]:
        """The values a custom field accepts; [] when any value is accepted."""
        response = self._call(
            "GET",
            f"/api/v2/custom-fields/{_segment(custom_field_id)}/authorized-values",
            "customFields:read",
        )
        values = response.json()
        return [str(v) for v in values] if isinstance(values, list) else []

    def list_custom_values(self, learning_user_id: str) -> list[dict[str, Any]]:
        """The user's custom-field values: `customFieldId`, `type`, `value`."""
        response = self._call(
            "GET", f"{_user_path(learning_user_id)}/custom-fields/values", "users:read"
        )
        values = response.json()
        if not isinstance(values, list):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "custom values are not a list")
        return [v for v in values if isinstance(v, dict)]

    def replace_custom_values(
        self, learning_user_id: str, values: Sequence[Mapping[str, str]]
    ) -> None:
        """Replace the user's whole set of custom-field values (values not sent are removed)."""
        self._call(
            "PUT",
            f"{_user_path(learning_user_id)}/custom-fields/values",
            "users:write",
            body={"customValues": [dict(v) for v in values]},
        )

    def check_access(self) -> None:
        """Get a token and make one cheap users:read call; raises ApiAuthFailed when refused."""
        self.find_users_by_mail(ACCESS_CHECK_MAIL)


def _manager_path(learning_user_id: str, manager_id: str) -> str:
    return f"{_user_path(learning_user_id)}/managers/{_segment(manager_id)}"
