"""Apply, the manager links: set each employee's manager and relink her subordinates.

`RunnerLinks`, a part of `apply._Runner`; the links go last, once every user of the pass has
its account. A link to a manager without an account (or whose write failed) waits for a later
pass.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.models import Action, AppliedState, Upsert
from reconciler.errors import ApiRejected
from reconciler.passes.apply_runner import ALREADY_DONE, RunnerBase


class RunnerLinks(RunnerBase):
    """The manager-link step of `apply._Runner`, after every account of the pass."""

    def apply_links(self, action: Upsert) -> bool:
        return self._claimed(
            action, "manager", _link_writes(action), lambda: self._apply_links(action)
        )

    def _apply_links(self, action: Upsert) -> bool:
        if self.report.auth_error is not None:
            return False
        if (
            action.manager is not None
            and action.manager.new
            and (not self._linked_user(action.manager.new) or action.manager.new in self.failed)
        ):
            # The manager has no account, or its own write failed this pass (its create, or a
            # restore refused): the snapshot keeps the previous link (saved by apply_action),
            # so the next pass plans this link again. One person's failure is not her team's.
            action = replace(action, manager=None)
            if not action.relink_subordinates:
                return True
        names: list[str] = [n for n in ("manager", "subordinates") if n in action.fields]

        def state_after() -> AppliedState:
            entry = self.store.get_entry(action.hibob_id)
            saved = entry.state if entry and entry.state else action.state
            assert saved is not None
            return replace(saved, manager=action.manager.new) if action.manager else saved

        return self._journalled(
            action, "manager", names, lambda: self._set_links(action), state_after
        )

    def _set_links(self, action: Upsert) -> tuple[str | None, AppliedState | None]:
        entry = self.store.get_entry(action.hibob_id)
        user_id = entry.learning_user_id if entry else None
        if user_id is None:
            return None, None
        if action.manager is not None:
            old, new = action.manager.old, action.manager.new
            old_id = action.manager.old_learning_user_id or (old and self._linked_user(old))
            if old_id:
                self._ignore(ALREADY_DONE, self.client.remove_manager, user_id, old_id)
            if new and (new_id := self._linked_user(new)):
                self.client.add_manager(user_id, new_id)
        for subordinate in action.relink_subordinates:
            entry = self.store.get_entry(subordinate)
            if entry is None or entry.learning_user_id is None or entry.state is None:
                continue
            try:
                self.client.add_manager(entry.learning_user_id, user_id)
            except ApiRejected as exc:
                if exc.code not in ("userDeleted", "managerDeleted"):
                    raise
                continue
            self.store.save_manager(subordinate, action.hibob_id)
        return user_id, None


def _has_links(action: Action) -> bool:
    return isinstance(action, Upsert) and (
        action.manager is not None or bool(action.relink_subordinates)
    )


def _link_writes(action: Action) -> int:
    if not isinstance(action, Upsert):
        return 0
    change = action.manager
    manager = 0 if change is None else max(1, (change.old is not None) + (change.new is not None))
    return manager + len(action.relink_subordinates)
