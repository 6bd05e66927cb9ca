"""The 360Learning simulator's users and their manager links: list, create (or restore), get,
update, soft delete, activate; managers and subordinates (api/360learning.md 2, 3).

Mixed into `LearningSimulator`; the request-body validation of users lives here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import (
    _ALL_OPS,
    _invalid,
    _json_body,
    _list_query,
    _paged,
    _passes,
    _query_pairs,
    _Refusal,
)
from reconciler.sandbox.learning.state import (
    _OBJECT_ID,
    BODY_ROLES,
    LearningState,
    _iso,
    _parse_datetime,
)

LANGS = frozenset(
    "bg cs da de el en es fi fr hr ht_HT hu id it ja kar_MM ko lt mh_MH nl nl_BE no pl pt ro ru "
    "rw_RW sk sl so_SO sv sw_KE th ti_ET tr uk zh vi".split()
)
_CREATE_FIELDS = frozenset(
    {
        "mail",
        "username",
        "membership",
        "primaryGroupId",
        "custom",
        "firstName",
        "lastName",
        "job",
        "lang",
        "organization",
        "phone",
        "toBeDeactivatedAt",
    }
)
_UPDATE_FIELDS = frozenset(
    {
        "firstName",
        "lastName",
        "phone",
        "job",
        "organization",
        "custom",
        "lang",
        "toBeDeactivatedAt",
        "mail",
        "primaryGroupId",
        "username",
        "profileImageId",
    }
)
_MAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_USER_FILTERS = {"mail": _ALL_OPS, "username": _ALL_OPS, "status": ("eq", "ne")}


class UsersMixin(LearningState):
    # ---- users -------------------------------------------------------------------------------

    def _list_users(self, request: httpx.Request) -> httpx.Response:
        filters, after = _list_query(request, _USER_FILTERS)
        for value in filters.get("status", {}).values():
            if value not in ("active", "invited", "deleted"):
                raise _invalid("status must be one of active, invited, deleted")
        # Sim decisions: the listing leaves deleted users out unless a status filter asks for
        # them (whether v2 lists them by default is undocumented; the less convenient reading,
        # so that the reconciler asks with status[eq]=deleted); filters compare exactly, mail
        # included (case-folding is undocumented, so the reconciler must not depend on it).
        hide_deleted = "status" not in filters and not self.lists_deleted_by_default
        rows = [
            u
            for u in self._users.values()
            if all(_passes(u.get(field), ops, fold=False) for field, ops in filters.items())
            and not (hide_deleted and u.get("status") == "deleted")
        ]
        return _paged(
            request, rows, lambda u: u["_id"], self.page_size, filters, after, self._public
        )

    def _get_user(self, request: httpx.Request, user_id: str) -> httpx.Response:
        return httpx.Response(200, json=self._public(self._require_user(user_id)))

    def _create_user(self, request: httpx.Request) -> httpx.Response:
        send_invitation = _invitation_flag(request)
        fields = _validated_user_input(_json_body(request), _CREATE_FIELDS, nullable=())
        membership = _validated_membership(fields.pop("membership", None))
        self._check_new_identifiers(fields)
        self._check_role_available(membership["role"])
        self._check_deactivation_date(fields.get("toBeDeactivatedAt"))
        if membership["groupId"] not in self.groups:
            raise _Refusal(404, "groupNotFound", "No group has the membership groupId")
        if fields.get("primaryGroupId", membership["groupId"]) != membership["groupId"]:
            raise _Refusal(400, "notMemberOfPrimaryGroup", "primaryGroupId is not a user group")
        existing = self._find_existing(fields)
        if existing is None:
            user, status = self._insert_user(fields, "invited"), 201
        else:
            user, status = self._restore(existing, fields), 200
        self._roles[user["_id"]].add((membership["groupId"], membership["role"]))
        if send_invitation and "mail" in user:
            self.invitations_sent.append(user["mail"])
        return httpx.Response(status, json=self._public(user))

    def _check_new_identifiers(self, fields: Json) -> None:
        if "mail" not in fields and "username" not in fields:
            raise _Refusal(400, "mailAndUsernameUndefined", "Give a mail or a username")
        if "username" in fields and not self.usernames_allowed:
            raise _Refusal(400, "usernameNotAllowed", "Usernames are not allowed here")
        if "mail" in fields:
            if not _MAIL.fullmatch(fields["mail"]):
                raise _Refusal(400, "mailInvalid", f"Invalid mail {fields['mail']!r}")
            # Sim decision: a mail is stored as sent (case kept); uniqueness ignores case
            # (`_user_by`) — the docs say neither, and this is the less convenient pair.

    def _find_existing(self, fields: Json) -> Json | None:
        by_mail = self._user_by("mail", fields.get("mail"))
        by_username = self._user_by("username", fields.get("username"))
        if by_mail and by_username and by_mail is not by_username:
            raise _Refusal(
                400, "loginIdentifierMultipleUsersFound", "mail and username match different users"
            )
        if by_mail and by_mail["status"] != "deleted":
            raise _Refusal(400, "mailAlreadyUsed", f"The mail {fields['mail']} is already used")
        if by_username and by_username["status"] != "deleted":
            raise _Refusal(400, "usernameAlreadyUsed", "The username is already used")
        return by_mail or by_username

    def _restore(self, user: Json, fields: Json) -> Json:
        # A restored account comes back invited without its groups, roles, deactivation date
        # or manager links [help 360028536131]; names and other attributes are kept.
        uid = user["_id"]
        user["status"] = "invited"
        user.pop("toBeDeactivatedAt", None)
        user.setdefault("reactivatedAt", []).append(self._now_iso())
        user.update(fields)
        self._roles[uid].clear()
        self._managers[uid].clear()
        for managers in self._managers.values():
            managers.discard(uid)
        return user

    def _update_user(self, request: httpx.Request, user_id: str) -> httpx.Response:
        fields = _validated_user_input(
            _json_body(request), _UPDATE_FIELDS, nullable=_UPDATE_FIELDS - {"lang"}
        )
        user = self._require_user(user_id)
        self._check_update(user, fields)
        for name, value in fields.items():
            if value is None:
                user.pop(name, None)
            else:
                user[name] = value
        return httpx.Response(200, json=self._public(user))

    def _check_update(self, user: Json, fields: Json) -> None:
        if "toBeDeactivatedAt" in fields:
            if user["status"] == "deleted":
                raise _Refusal(400, "invalidUpdateOnDeletedUser", "The user is deleted")
            if user["_id"] == self.owner_id:
                raise _Refusal(400, "ownerDeactivationNotAllowed", "The owner stays")
            self._check_deactivation_date(fields["toBeDeactivatedAt"])
        if fields.get("mail") is not None:
            if not _MAIL.fullmatch(fields["mail"]):
                raise _Refusal(400, "mailInvalid", f"Invalid mail {fields['mail']!r}")
            if self._user_by("mail", fields["mail"]) not in (None, user):
                raise _Refusal(400, "mailAlreadyUsed", f"The mail {fields['mail']} is used")
        if fields.get("username") is not None:
            if not self.usernames_allowed:
                raise _Refusal(400, "usernameNotAllowed", "Usernames are not allowed here")
            if self._user_by("username", fields["username"]) not in (None, user):
                raise _Refusal(400, "usernameAlreadyUsed", "The username is already used")
        remaining = {**user, **fields}
        if remaining.get("mail") is None and remaining.get("username") is None:
            raise _Refusal(400, "userShouldHaveAtLeastOneValidIdentifier", "Keep mail or username")
        group_id = fields.get("primaryGroupId")
        if group_id is not None and group_id not in {g for g, _ in self._roles[user["_id"]]}:
            raise _Refusal(400, "notMemberOfPrimaryGroup", "primaryGroupId is not a user group")
        if fields.get("profileImageId") is not None:
            raise _Refusal(400, "mediaNotFound", "The sandbox holds no media")

    def _delete_user(self, request: httpx.Request, user_id: str) -> httpx.Response:
        user = self._require_user(user_id)
        if user_id == self.owner_id:
            raise _Refusal(400, "userIsCompanyOwner", "The company owner cannot be deleted")
        if user["status"] != "deleted":  # Sim decision: deleting a deleted user is a no-op.
            self._soft_delete(user, self._now_iso())
        return httpx.Response(204)

    def _activate_user(self, request: httpx.Request, user_id: str) -> httpx.Response:
        user = self._require_user(user_id)
        if user["status"] == "deleted":
            raise _Refusal(400, "userDeleted", "Recreate the user (POST /api/v2/users) first")
        user["status"] = "active"
        return httpx.Response(200, json=self._public(user))

    # ---- managers ----------------------------------------------------------------------------

    def _list_managers(self, request: httpx.Request, user_id: str) -> httpx.Response:
        self._require_user(user_id)
        filters, after = _list_query(request, {})
        return _paged(
            request,
            list(self._managers[user_id]),
            str,
            self.managers_page_size,
            filters,
            after,
            str,
        )

    def _list_subordinates(self, request: httpx.Request, user_id: str) -> httpx.Response:
        self._require_user(user_id)
        filters, after = _list_query(request, {})
        rows = sorted(uid for uid, managers in self._managers.items() if user_id in managers)
        return _paged(request, rows, str, self.managers_page_size, filters, after, str)

    def _add_manager(self, request: httpx.Request, user_id: str, manager_id: str) -> httpx.Response:
        user, manager = self._require_user(user_id), self._require_manager(manager_id)
        if user["status"] == "deleted":
            raise _Refusal(400, "userDeleted", "The user is deleted")
        if manager["status"] == "deleted":
            raise _Refusal(400, "managerDeleted", "The manager is deleted")
        self._managers[user_id].add(manager_id)
        return httpx.Response(204)

    def _remove_manager(
        self, request: httpx.Request, user_id: str, manager_id: str
    ) -> httpx.Response:
        user = self._require_user(user_id)
        self._require_manager(manager_id)
        if user["status"] == "deleted":
            raise _Refusal(400, "userDeleted", "The user is deleted")
        if manager_id not in self._managers[user_id]:
            raise _Refusal(400, "managerNotAssignedToUser", "Not a manager of this user")
        self._managers[user_id].discard(manager_id)
        return httpx.Response(204)

    def _require_manager(self, manager_id: str) -> Json:
        if manager_id not in self._users:
            raise _Refusal(404, "managerNotFound", f"No user {manager_id}")
        return self._users[manager_id]


# ---- pure request/response helpers -----------------------------------------------------------


def _validated_user_input(body: object, allowed: frozenset[str], nullable: Iterable[str]) -> Json:
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise _invalid(f"Unexpected properties: {', '.join(sorted(unknown))}")
    fields = dict(body)
    for name, value in body.items():
        if name == "membership" or (value is None and name in nullable):
            continue
        if not isinstance(value, str) or not value:
            raise _invalid(f"{name} must be a non-empty string")
        if name == "lang" and value not in LANGS:
            raise _invalid(f"lang {value!r} is not supported")
        if name in ("primaryGroupId", "profileImageId") and not _OBJECT_ID.fullmatch(value):
            raise _invalid(f"{name} must be a 24-character hexadecimal id")
        if name == "toBeDeactivatedAt":
            fields[name] = _iso(_parse_datetime(value))
    return fields


def _validated_membership(membership: object) -> Json:
    if (
        not isinstance(membership, dict)
        or set(membership) != {"groupId", "role"}
        or not isinstance(membership["groupId"], str)
        or not _OBJECT_ID.fullmatch(membership["groupId"])
        or membership["role"] not in BODY_ROLES
    ):
        raise _invalid("membership {groupId, role} is required")
    return dict(membership)


def _invitation_flag(request: httpx.Request) -> bool:
    pairs = _query_pairs(request)
    if any(key != "sendInvitationEmail" for key, _ in pairs):
        raise _invalid("Only sendInvitationEmail is accepted in the query")
    values = [value for _, value in pairs]
    if any(value not in ("true", "false") for value in values):
        raise _invalid("sendInvitationEmail must be true or false")
    return "false" not in values
