"""The desired end state, computed from the simulated Hibob alone, and every way the simulated
360Learning (and the reconciler's database) can differ from it.

Independent of the reconciler's own decision code on purpose: it restates product §1.2-§1.5
for the default settings (everyone in scope, prehires provisioned, organization = department,
manager links on, external ids on platform "hibob").
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from pathlib import Path

from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator

PLATFORM = "hibob"
_MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mail(record: dict) -> str | None:
    raw = record.get("root.email")
    return raw.strip().lower() if isinstance(raw, str) and raw.strip() else None


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _is_prehire(hibob: HibobSimulator, record: dict) -> bool:
    """Hired, or a start date still to come for someone not terminated: provisioned (§1.3)."""
    if record.get("internal.status") != "Inactive":
        return False
    lifecycle = str(record.get("internal.lifecycleStatus") or "").lower()
    start = record.get("work.startDate")
    is_future = (
        isinstance(start, str)
        and _DATE.match(start) is not None
        and start[:10] > hibob.today.isoformat()
    )
    return lifecycle == "hired" or (is_future and "termin" not in lifecycle)


def unknown_access(hibob: HibobSimulator) -> set[str]:
    """Employees whose access status is null or not a known value: no change is due (§1.3)."""
    return {
        h
        for h, r in hibob.records.items()
        if r.get("internal.status") not in ("Active", "Inactive")
    }


def expected_active(hibob: HibobSimulator) -> dict[str, dict]:
    """hibob id -> the attributes its active 360Learning user must have."""
    records = list(hibob.records.values())
    counts: defaultdict[str, int] = defaultdict(int)
    for record in records:
        if mail := _mail(record):
            counts[mail] += 1
    wanted = {}
    for record in records:
        mail = _mail(record)
        has_access = record.get("internal.status") == "Active" or _is_prehire(hibob, record)
        if not has_access or not mail or not _MAIL.match(mail) or counts[mail] > 1:
            continue
        wanted[record["root.id"]] = {
            "mail": mail,
            "firstName": _text(record.get("root.firstName")),
            "lastName": _text(record.get("root.surname")),
            "job": _text(hibob._human("work.title", record.get("work.title"))),  # noqa: SLF001
            "organization": _text(
                hibob._human(
                    "work.department",  # noqa: SLF001
                    record.get("work.department"),
                )
            ),
        }
    return wanted


def find_differences(
    hibob: HibobSimulator,
    learning: LearningSimulator,
    db: Path | None = None,
    former_mails: dict[str, set[str]] | None = None,
) -> list[str]:
    """Every way the end state differs from the desired state, one line each (empty: equal)."""
    wanted = expected_active(hibob)
    users = {u["_id"]: u for u in learning.users_by_mail().values()}
    users.pop(learning.owner_id, None)
    unknown_mails = {_mail(hibob.records[h]) for h in unknown_access(hibob)}
    by_mail = {u["mail"]: u for u in users.values() if "mail" in u}
    mapping = {
        m["value"]: m["targetId"]
        for m in learning.external_ids()
        if m["platform"] == PLATFORM and m["targetType"] == "user"
    }
    links = _links(db) if db else None
    problems = []
    for hibob_id, attributes in sorted(wanted.items()):
        user = by_mail.get(attributes["mail"])
        if user is None:
            problems.append(f"{hibob_id}: no user with mail {attributes['mail']}")
            continue
        if user["status"] != "active":
            problems.append(f"{hibob_id}: user {user['_id']} is {user['status']}")
        for name, value in attributes.items():
            if value is None:
                continue  # an empty Hibob value keeps what 360Learning holds (empty = "keep")
            if user.get(name) != value:
                problems.append(f"{hibob_id}: {name} is {user.get(name)!r}, not {value!r}")
        if mapping.get(hibob_id) != user["_id"]:
            problems.append(
                f"{hibob_id}: external id maps to {mapping.get(hibob_id)}, not {user['_id']}"
            )
        if links is not None and links.get(hibob_id) != user["_id"]:
            problems.append(f"{hibob_id}: database links {links.get(hibob_id)}, not {user['_id']}")
        manager = hibob.records[hibob_id].get("work.reportsTo")
        if (
            manager in wanted
            and manager != hibob_id
            and (boss := by_mail.get(wanted[manager]["mail"]))
        ):
            if learning.managers_of(user["_id"]) != {boss["_id"]}:
                problems.append(
                    f"{hibob_id}: managers {sorted(learning.managers_of(user['_id']))}"
                    f", not {{{boss['_id']}}}"
                )
    wanted_mails = {a["mail"] for a in wanted.values()}
    # An employee who keeps access but cannot be written (email gone, invalid or shared) keeps
    # the account it had: an unusable email is never a reason to deactivate (§1.2).
    kept = {
        mapping[h]
        for h, r in hibob.records.items()
        if h not in wanted
        and h in mapping
        and (r.get("internal.status") == "Active" or _is_prehire(hibob, r))
    }
    for user in users.values():
        if (
            user["status"] != "deleted"
            and user.get("mail") not in wanted_mails
            and user.get("mail") not in unknown_mails
            and user["_id"] not in kept
        ):
            problems.append(
                f"user {user['_id']} ({user.get('mail')}) is {user['status']} "
                "but nobody in Hibob should have it"
            )
    problems += find_duplicates(hibob, learning, former_mails)
    return problems


def find_duplicates(
    hibob: HibobSimulator,
    learning: LearningSimulator,
    former_mails: dict[str, set[str]] | None = None,
) -> list[str]:
    """Employees that own more than one 360Learning user (by any of their mails or by
    external id)."""
    mails_of: defaultdict[str, set[str]] = defaultdict(set)
    for hibob_id, record in hibob.records.items():
        if mail := _mail(record):
            mails_of[hibob_id].add(mail)
    for hibob_id, mails in (former_mails or {}).items():
        mails_of[hibob_id] |= {m.strip().lower() for m in mails}
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for hibob_id, mails in mails_of.items():
        for mail in mails:
            owners[mail].add(hibob_id)
    users_of: defaultdict[str, set[str]] = defaultdict(set)
    for user in learning.users_by_mail().values():
        for hibob_id in owners.get(user.get("mail"), ()):
            if len(owners[user["mail"]]) == 1:
                users_of[hibob_id].add(user["_id"])
    for item in learning.external_ids():
        if item["platform"] == PLATFORM and item["targetType"] == "user":
            users_of[item["value"]].add(item["targetId"])
    return [
        f"{hibob_id}: {len(ids)} users {sorted(ids)}"
        for hibob_id, ids in sorted(users_of.items())
        if len(ids) > 1
    ]


def _links(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT hibob_id, learning_user_id FROM employees"))


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
