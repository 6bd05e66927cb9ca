"""Email swaps and rotations (pure): mail changes that take each other's mails.

360Learning refuses a mail another account holds (`mailAlreadyUsed`), so when A takes B's
mail and B takes A's, neither PATCH can go first. The moves are ordered so that each PATCH
targets a free mail: a chain (A takes B's, B takes C's, C takes a new one) runs from its
free end; a cycle parks one account on a temporary mail of its own first (its local part
plus a `+moving-<hibob id>` tag, on its own domain), then ends with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.core.models import Action, Update


def compute_interlocked_mail_changes(
    actions: Iterable[Action], old_mails: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """(old mail, new mail) by hibob id, for the updates whose new mail is another update's
    old mail, or whose old mail another update takes: these wait for `compute_mail_moves`."""
    changes = {
        a.hibob_id: (old_mails[a.hibob_id].lower(), str(a.changes["mail"]).lower())
        for a in actions
        if isinstance(a, Update) and a.changes.get("mail") and old_mails.get(a.hibob_id)
    }
    olds = {old for old, _ in changes.values()}
    news = {new for _, new in changes.values()}
    return {h: (old, new) for h, (old, new) in changes.items() if new in olds or old in news}


def compute_mail_moves(moves: Mapping[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """The PATCHes, in order, that carry out `moves` ((old, new) mail by hibob id): each one
    targets a mail no account in `moves` holds at that point."""
    current = {h: old for h, (old, _) in moves.items()}
    holder = {old: h for h, old in current.items()}
    pending = {h: new for h, (_, new) in moves.items() if new != current[h]}
    order: list[tuple[str, str]] = []
    while pending:
        free = next((h for h in sorted(pending) if holder.get(pending[h]) in (None, h)), None)
        if free is not None:
            order.append((free, pending[free]))
            holder.pop(current[free], None)
            holder[pending[free]] = current[free] = free
            del pending[free]
            continue
        parked = min(pending)  # a cycle: park one account on a mail of its own
        spare = parking_mail(current[parked], parked)
        order.append((parked, spare))
        holder.pop(current[parked], None)
        holder[spare] = parked
        current[parked] = spare
    return order


def parking_mail(mail: str, hibob_id: str) -> str:
    local, _, domain = mail.partition("@")
    return f"{local.split('+', 1)[0]}+moving-{hibob_id}@{domain}"
