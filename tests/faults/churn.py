"""HR changes in the simulated Hibob between passes: hires, leavers, rehires, renames, moves.

`apply_churn` picks `count` changes with `rng` and returns what it did as (kind, hibob id)
pairs (kinds as in `reconciler.sandbox.sender.EVENTS_OF_CHANGE`); former emails are remembered
in `former_mails` so duplicate checks can follow a renamed employee.
"""

from __future__ import annotations

import datetime as dt
import random

from reconciler.sandbox.hibob import HibobSimulator

TITLES = (
    "Chief Tea Officer",
    "Staff Engineer",
    "Account Executive",
    "Support Agent",
    "Product Designer",
    "Controller",
)
DEPARTMENTS = ("Engineering", "Sales", "Support", "Product", "Finance", "Legal")
KINDS = ("title", "title", "department", "email", "terminate", "hire", "rehire", "manager")


def apply_churn(
    hibob: HibobSimulator,
    rng: random.Random,
    count: int,
    former_mails: dict[str, set[str]],
    *,
    tag: str = "",
    kinds: tuple[str, ...] = KINDS,
) -> list[tuple[str, str]]:
    done = []
    for number in range(count):
        records = hibob.records
        active = sorted(
            h
            for h, r in records.items()
            if r.get("internal.status") == "Active" and h != hibob.ceo_id
        )
        inactive = sorted(
            h for h, r in records.items() if r.get("internal.lifecycleStatus") == "terminated"
        )
        kind = rng.choice(kinds)
        if kind == "rehire" and not inactive or not active:
            kind = "hire"
        if kind == "hire":
            first = rng.choice(("Zoë", "Iñaki", "Łukasz", "Siobhán", "Nour", "Håkon"))
            hibob_id = hibob.add_employee(
                first_name=first,
                surname=f"Churn{tag}x{number}",
                **{"work.reportsTo": rng.choice(active) if active else None},
            )
            done.append(("hire", hibob_id))
            continue
        hibob_id = rng.choice(inactive if kind == "rehire" else active)
        if kind == "title":
            hibob.update_employee(hibob_id, **{"work.title": rng.choice(TITLES)})
        elif kind == "department":
            hibob.update_employee(hibob_id, **{"work.department": rng.choice(DEPARTMENTS)})
        elif kind == "email":
            old = records[hibob_id].get("root.email")
            if old:
                former_mails.setdefault(hibob_id, set()).add(old)
            hibob.update_employee(hibob_id, email=f"renamed.{tag}{number}.{hibob_id}@acme.example")
        elif kind == "terminate":
            hibob.terminate(hibob_id, on=hibob.today - dt.timedelta(days=1))
        elif kind == "rehire":
            hibob.rehire(hibob_id)
        elif kind == "manager":
            others = [h for h in active if h != hibob_id]
            hibob.update_employee(hibob_id, manager_id=rng.choice(others))
        done.append((kind, hibob_id))
    return done
