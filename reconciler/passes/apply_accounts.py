"""Apply, the accounts: create, adopt, restore, update and deactivate one employee's account.

`RunnerAccounts`, a part of `apply._Runner`: each step returns the linked 360Learning user id
(and a state to save instead, when what was applied differs from the plan). Custom-field
values, memberships and the external-id link of each account are written here too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from reconciler.clients.learning_groups import Membership
from reconciler.core.custom_fields import split_custom
from reconciler.core.models import (
    Action,
    Adopt,
    AppliedState,
    Create,
    Deactivate,
    LearningUser,
    Problem,
    Reactivate,
    Update,
    Upsert,
)
from reconciler.core.plan import compute_existing_user_decision
from reconciler.errors import AccountConflict, ApiRejected
from reconciler.passes.apply_runner import ALREADY_DONE, RunnerBase
from reconciler.passes.custom_fields import cached_definitions, write_custom_values

log = logging.getLogger("reconciler.passes.apply")  # apply's records keep one logger name
REFUSED_PLATFORM_KEY = "refused_external_id_platform"
"""service_state key: the external-id platform name 360Learning last refused as reserved."""


class RunnerAccounts(RunnerBase):
    """The account steps of `apply._Runner`: one employee's account, its values and links."""

    # -- the steps: each returns (linked 360Learning user id, state to save instead) ----------
    def _step(self, action: Action) -> tuple[str | None, AppliedState | None]:
        """The action's step; then its custom-field values, with their own replace-all PUT."""
        custom: dict[str, Any] = {}
        if isinstance(action, Upsert):
            plain, custom = split_custom(action.changes)
            action = replace(action, changes=plain) if custom else action
        user_id, override = self._attribute_step(action)
        if custom and user_id:
            write_custom_values(self.client, user_id, custom, cached_definitions(self.store))
        return user_id, override

    def _attribute_step(self, action: Action) -> tuple[str | None, AppliedState | None]:
        match action:
            case Create():
                return self._create(action), None
            case Adopt():
                return self._adopt(action)
            case Reactivate():
                return self._reactivate(action)
            case Update():
                return self._update(action), None
            case Deactivate():
                return self._deactivate(action), None
        raise TypeError(f"unknown action {action!r}")

    def _create(self, action: Create) -> str:
        try:
            user, is_restored = self.client.create_user(
                action.changes,
                group_id=self.settings.group_id,
                role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email,
            )
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed" or not action.email:
                raise
            # The user exists (an earlier create whose answer was lost, or made by hand with
            # other letter case): decide on it by the core's rules, comparing mails locally.
            decision = self._decide_on_existing(action)
            if not isinstance(decision, Adopt):
                raise ApiRejected(
                    "360Learning",
                    400,
                    "mailAlreadyUsed",
                    decision.reason if isinstance(decision, Problem) else "the mail is used",
                ) from None
            return self._adopt(replace(decision, changes=split_custom(decision.changes)[0]))[0]
        self.store.save_link(action.hibob_id, user.learning_user_id, action.email, self.at())
        # A 200 restored a deleted account with this mail that the plan did not see: it is
        # unlinked (the plan refuses mails held by others' accounts), so adopt it fully.
        self._finish_user(action, user, skip_group=None if is_restored else self.settings.group_id)
        return user.learning_user_id

    def _decide_on_existing(self, action: Create) -> Action | Problem:
        mail = (action.email or "").lower()
        users = [u for u in self.client.find_users_by_mail(mail) if u.mail == mail]
        if not users:  # stored with other letter case: the filter's folding is undocumented
            users = [u for u in self.client.list_users() if u.mail == mail]
        roles = {
            u.learning_user_id: frozenset(self.client.list_user_roles(u.learning_user_id))
            for u in users
        }
        return compute_existing_user_decision(
            action, users, self.store.load_snapshot(), roles, self.now, self.settings.limits
        )

    def _adopt(self, action: Adopt) -> tuple[str, AppliedState | None]:
        assert action.learning_user_id
        self.store.save_link(action.hibob_id, action.learning_user_id, action.email, self.at())
        if action.restore:
            return self._restore_and_remail(action, action.restore_mail or action.email or "")
        user = self._update_attributes(action.learning_user_id, action.changes)
        self._finish_user(action, user)
        return action.learning_user_id, None

    def _update(self, action: Update) -> str:
        assert action.learning_user_id
        self._update_attributes(action.learning_user_id, action.changes)
        for group in action.remove_groups:
            self._ignore(
                ALREADY_DONE,
                self.client.remove_group_role,
                group.group_id,
                group.role,
                action.learning_user_id,
            )
        self._finish_user(action, None)
        return action.learning_user_id

    def _reactivate(self, action: Reactivate) -> tuple[str, AppliedState | None]:
        return self._restore_and_remail(action, action.restore_mail or action.email or "")

    def _restore_and_remail(
        self, action: Upsert, restore_mail: str
    ) -> tuple[str, AppliedState | None]:
        """Restore the linked account by its own mail, then PATCH a changed mail."""
        assert action.learning_user_id and action.state is not None
        attributes = {k: v for k, v in action.changes.items() if k != "mail"}
        user_id, membership = self._restore(action.learning_user_id, restore_mail, attributes)
        self._drop_subordinate_links(action)
        override = None
        new_mail = action.changes.get("mail")
        if new_mail and new_mail != restore_mail:
            try:
                self.client.update_user(user_id, {"mail": new_mail})
            except ApiRejected as exc:
                if exc.code != "mailAlreadyUsed":
                    raise
                # Restored, but the new mail belongs to another account: keep the account on
                # its old mail and report the conflict on this employee.
                keep = {**action.state.attributes, "mail": restore_mail}
                override = replace(action.state, attributes=keep)
                self._report_conflict(
                    action,
                    f"mail {new_mail} is used by another 360Learning account: kept {restore_mail}",
                )
        self._finish_user(action, None, skip_group=membership)
        return user_id, override

    def _drop_subordinate_links(self, action: Upsert) -> None:
        """A restore dropped "being the manager of others": record it on the subordinates, so
        that if relinking them fails or is cut short, their own next pass links them again."""
        self.store.drop_manager(action.hibob_id, among=action.relink_subordinates)

    def _restore(
        self, learning_user_id: str, mail: str, attributes: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Re-POST the mail of a deleted account; (its id, the group the POST made it join).

        Only while the account still holds that mail: one an admin pseudonymized or re-mailed
        while deleted would not be restored by it, and the POST would make a second account.
        """
        current = self.client.get_user(learning_user_id)
        if current is None or (current.is_deleted and current.mail != mail.strip().lower()):
            held = "is gone" if current is None else f"now holds {current.mail or 'no mail'}"
            raise AccountConflict(
                "accountReMailed" if current else "accountGone",
                f"the employee's deleted 360Learning account {learning_user_id} {held}, not "
                f"{mail} (pseudonymized or re-mailed by an admin?): restoring it by mail would "
                "create a second account; restore it by hand, or remove the link",
            )
        try:
            user, _ = self.client.create_user(
                {**attributes, "mail": mail},
                group_id=self.settings.group_id,
                role=self.settings.role,
                send_invitation_email=self.settings.send_invitation_email,
            )
        except ApiRejected as exc:
            if exc.code != "mailAlreadyUsed":
                raise
            # Not deleted after all (an earlier apply stopped half-way): bring it up to date.
            self.client.update_user(learning_user_id, attributes)
            return learning_user_id, None
        if user.learning_user_id != learning_user_id:
            raise AccountConflict(
                "restoredOtherAccount",
                f"re-POSTing {mail} answered with account {user.learning_user_id},"
                f" not the employee's own {learning_user_id}; left for an admin",
            )
        return learning_user_id, self.settings.group_id

    def _deactivate(self, action: Deactivate) -> str | None:
        assert action.learning_user_id
        if not action.is_already_deleted:
            self._ignore(("userNotFound",), self.client.deactivate_user, action.learning_user_id)
        return action.learning_user_id

    def _update_attributes(self, user_id: str, changes: Any) -> LearningUser | None:
        return self.client.update_user(user_id, changes) if changes else None

    def _finish_user(
        self, action: Upsert, user: LearningUser | None, skip_group: str | None = None
    ) -> None:
        user_id = user.learning_user_id if user else action.learning_user_id
        if user_id is None:
            entry = self.store.get_entry(action.hibob_id)
            user_id = entry.learning_user_id if entry else None
        assert user_id
        if action.activate and (user is None or user.status != "active"):
            self.client.activate_user(user_id)
        for group in sorted(action.add_groups, key=lambda g: (g.group_id, g.role)):
            if group.group_id == skip_group and group.role == self.settings.role:
                continue  # the membership create already gave
            if self.is_bulk:
                with self._lock:
                    self.deferred.append((action, Membership(user_id, group.group_id, group.role)))
                continue
            self.client.add_group_role(group.group_id, group.role, user_id)
        if action.link_external_id:
            self._link_external_id(user_id, action.hibob_id)

    def _link_external_id(self, user_id: str, hibob_id: str) -> None:
        """Map the Hibob id to the account. A mapping of that value to another (or a deleted)
        account is repaired; a platform name 360Learning reserves stops linking for the pass
        (not the accounts' writes) and is remembered for `check`."""
        platform = self.settings.external_id_platform
        if not platform or self.is_platform_refused:
            return
        try:
            self.client.create_external_id(platform, user_id, hibob_id)
        except ApiRejected as exc:
            if exc.code == "mappingAlreadyExists":
                return  # the account has its mapping on this platform
            if exc.code == "reservedPlatformName":
                self._refuse_platform(platform, exc)
                return
            if exc.code != "valueAlreadyUsed":
                raise
            mapping = self.client.find_external_id(platform, hibob_id)
            if mapping is not None and mapping["targetId"] != user_id:
                log.warning(
                    "employee %s: external id %s on %r pointed to account %s, not %s: repaired",
                    hibob_id,
                    hibob_id,
                    platform,
                    mapping["targetId"],
                    user_id,
                    extra={"employee_id": hibob_id},
                )
                self.client.replace_external_id(mapping["_id"], platform, user_id, hibob_id)

    def _refuse_platform(self, platform: str, exc: ApiRejected) -> None:
        with self._lock:
            if self.is_platform_refused:
                return
            self.is_platform_refused = True
        self.store.save_service_state({REFUSED_PLATFORM_KEY: platform})
        log.warning(
            "learning.external_id_platform %r: %s; this pass writes no external-id links "
            '(choose another platform name, or "" for none)',
            platform,
            exc,
        )
