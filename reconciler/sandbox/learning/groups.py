"""The 360Learning simulator's groups and group roles: list and get groups, a user's and a
group's roles, add and remove a role (the learner removal cascades to public subgroups).

Mixed into `LearningSimulator`; bulk membership writes live in bulk.py.
"""

from __future__ import annotations

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.learning.http import _invalid, _list_query, _paged, _Refusal
from reconciler.sandbox.learning.state import LearningState

# The role *path* segment is kebab case while bodies and responses say `userAdmin` [spec].
PATH_ROLES = {
    "admin": "admin",
    "analyst": "analyst",
    "coach": "coach",
    "contributor": "contributor",
    "editor": "editor",
    "learner": "learner",
    "user-admin": "userAdmin",
}


class GroupsMixin(LearningState):
    # ---- groups and roles --------------------------------------------------------------------

    def _list_user_roles(self, request: httpx.Request, user_id: str) -> httpx.Response:
        self._require_user(user_id)
        filters, after = _list_query(request, {})
        return _paged(
            request,
            list(self._roles[user_id]),
            lambda r: f"{r[0]}:{r[1]}",
            self.roles_page_size,
            filters,
            after,
            lambda r: {"groupId": r[0], "role": r[1]},
        )

    def _list_groups(self, request: httpx.Request) -> httpx.Response:
        filters, after = _list_query(request, {})
        return _paged(
            request,
            list(self.groups.values()),
            lambda g: g["_id"],
            self.groups_page_size,
            filters,
            after,
            dict,
        )

    def _get_group(self, request: httpx.Request, group_id: str) -> httpx.Response:
        return httpx.Response(200, json=dict(self._require_group(group_id)))

    def _list_group_roles(self, request: httpx.Request, group_id: str) -> httpx.Response:
        self._require_group(group_id)
        filters, after = _list_query(request, {})
        rows = [
            (uid, role)
            for uid, roles in self._roles.items()
            for gid, role in roles
            if gid == group_id
        ]
        return _paged(
            request,
            rows,
            lambda r: f"{r[0]}:{r[1]}",
            self.roles_page_size,
            filters,
            after,
            lambda r: {"userId": r[0], "role": r[1]},
        )

    def _add_group_role(
        self, request: httpx.Request, group_id: str, role: str, user_id: str
    ) -> httpx.Response:
        body_role = self._path_role(role)
        self._require_group(group_id)
        user = self._require_user(user_id)
        if user["status"] == "deleted":
            raise _Refusal(400, "userDeleted", "The user is deleted")
        self._roles[user_id].add((group_id, body_role))
        return httpx.Response(204)

    def _remove_group_role(
        self, request: httpx.Request, group_id: str, role: str, user_id: str
    ) -> httpx.Response:
        body_role = self._path_role(role)
        self._require_group(group_id)
        if (group_id, body_role) not in self._roles.get(user_id, set()):
            raise _Refusal(404, "userNotFoundInGroup", "The user has no such role in the group")
        self._roles[user_id].discard((group_id, body_role))
        if body_role == "learner":
            self._cascade_learner_removal(user_id, group_id)
        return httpx.Response(204)

    def _cascade_learner_removal(self, user_id: str, group_id: str) -> None:
        # Removing `learner` also removes it from public subgroups, down to the first private
        # subgroup, which is excluded along with everything under it [spec].
        for child in self.groups.values():
            if child.get("parentId") == group_id and child["public"]:
                self._roles[user_id].discard((child["_id"], "learner"))
                self._cascade_learner_removal(user_id, child["_id"])

    def _path_role(self, role: str) -> str:
        if role not in PATH_ROLES:
            # `userAdmin` is the body spelling; the path enum only knows `user-admin`.
            raise _invalid(f"role must be one of {', '.join(PATH_ROLES)}")
        self._check_role_available(PATH_ROLES[role])
        return PATH_ROLES[role]

    def _require_group(self, group_id: str) -> Json:
        if group_id not in self.groups:
            raise _Refusal(404, "groupNotFound", f"No group {group_id}")
        return self.groups[group_id]
