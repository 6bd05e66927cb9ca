"""Apply, what waits for the actions: mail swaps and rotations, and memberships in bulk.

`RunnerDeferred`, a part of `apply._Runner`: mails that updates take from each other are moved
one PATCH at a time in a safe order; the memberships a large pass deferred are added in bulk
jobs, and one that failed is taken out of its employee's applied state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from reconciler.clients.learning_groups import add_memberships
from reconciler.core.models import Action, GroupRole, Update
from reconciler.core.moves import compute_mail_moves
from reconciler.errors import ApiError, ApiUnavailable
from reconciler.passes.apply_runner import RunnerBase
from reconciler.store.database import Store


class RunnerDeferred(RunnerBase):
    """What `apply._Runner` does after the actions: mail moves, deferred memberships."""

    def add_deferred_memberships(self) -> None:
        """Add the memberships the actions deferred in bulk jobs (or one by one without the
        groups:bulk scope); a membership that failed is taken out of its employee's applied
        state, so the next pass plans it again."""
        if not self.deferred:
            return
        try:
            errors = add_memberships(self.client, [m for _, m in self.deferred])
        except ApiError as exc:
            errors = {m: str(exc) for _, m in self.deferred}
        for action, membership in self.deferred:
            error = errors.get(membership)
            if error is None:
                continue
            entry = self.store.get_entry(action.hibob_id)
            if entry and entry.state:
                lost = GroupRole(membership.group_id, membership.role)
                self.store.save_state(
                    action.hibob_id, replace(entry.state, groups=entry.state.groups - {lost})
                )
            journal_id = self.store.journal_start(
                self.pass_id,
                action.hibob_id,
                action.email,
                "groups",
                ["groups"],
                action.reason,
                self.at(),
            )
            self._fail(
                action,
                "groups",
                journal_id,
                ApiUnavailable("360Learning", None, "bulkMembershipFailed", error),
            )

    def move_mails(self, moves: Mapping[str, tuple[str, str]], by_id: Mapping[str, Action]) -> None:
        """Swaps and rotations: one PATCH at a time, in the order `compute_mail_moves` gives,
        each to a free mail (a cycle parks one account on a mail of its own first)."""
        if not moves or self.report.auth_error is not None:
            return
        updates = {h: by_id[h] for h in sorted(moves)}
        journal = {
            h: self.store.journal_start(
                self.pass_id,
                h,
                a.email,
                "update",
                ["mail"],
                f"email swap or rotation: {a.reason}",
                self.at(),
            )
            for h, a in updates.items()
        }
        failed: dict[str, ApiError] = {}
        for hibob_id, mail in compute_mail_moves(moves):
            if hibob_id in failed:
                continue
            user_id = updates[hibob_id].learning_user_id
            assert user_id
            try:
                self.client.update_user(user_id, {"mail": mail})
            except ApiError as exc:
                failed[hibob_id] = exc
        for hibob_id, action in updates.items():
            if hibob_id in failed:
                self._fail(action, "update", journal[hibob_id], failed[hibob_id])
                continue
            entry = self.store.get_entry(hibob_id)
            base = entry.state if entry and entry.state else action.state
            assert base is not None
            state = replace(base, attributes={**base.attributes, "mail": moves[hibob_id][1]})
            self._succeed(
                action, "update", ["mail"], journal[hibob_id], action.learning_user_id, state
            )


def _stored_mails(store: Store, actions: Iterable[Action]) -> dict[str, str]:
    """The mail each updated account holds now, for updates that change it."""
    mails = {}
    for action in actions:
        if isinstance(action, Update) and action.changes.get("mail"):
            entry = store.get_entry(action.hibob_id)
            held = entry.state.attributes.get("mail") if entry and entry.state else None
            if isinstance(held, str) and held:
                mails[action.hibob_id] = held
    return mails


def _without_mail(action: Action) -> Action:
    """The update minus its mail, which `move_mails` writes; until then the snapshot keeps
    the account's present mail."""
    assert isinstance(action, Update) and action.state is not None
    entry_mail = action.state.attributes.get("mail")
    changes = {k: v for k, v in action.changes.items() if k != "mail"}
    return replace(
        action,
        changes=changes,
        state=replace(action.state, attributes={**action.state.attributes, "mail": entry_mail}),
    )
