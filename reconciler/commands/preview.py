"""`reconciler preview --config CANDIDATE`: the decisions that differ between the settings in
force and CANDIDATE over one Hibob read and the same snapshot. Writes nothing anywhere."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, TextIO

from reconciler.config import Settings
from reconciler.core.desired import required_fields
from reconciler.core.preview import Difference, compute_differences, count_differences
from reconciler.core.vocabulary import PassKind
from reconciler.passes.context import PassContext, now_utc
from reconciler.passes.reconcile import plan_from_read, read_employees

HELD_EXIT = 3


def run_preview(services: PassContext, candidate: Settings, out: TextIO, *, as_json: bool) -> int:
    """Print what CANDIDATE would decide differently; 3 when its plan would be held."""
    now = now_utc()
    snapshot = services.store.load_snapshot()
    fields = list(dict.fromkeys(required_fields(services.settings) + required_fields(candidate)))
    employees, problems = read_employees(services, PassKind.INCREMENTAL, fields, snapshot)
    current = plan_from_read(services, PassKind.INCREMENTAL, employees, problems, snapshot, now=now)
    proposed = plan_from_read(
        replace(services, settings=candidate),
        PassKind.INCREMENTAL,
        employees,
        problems,
        snapshot,
        now=now,
    )
    differences = compute_differences(current, proposed, snapshot)
    held = [
        {"employee_id": h.hibob_id, "email": h.email, "what": h.what, "reason": h.reason}
        for h in proposed.held
    ]
    if as_json:
        document: dict[str, Any] = {
            "counts": count_differences(differences),
            "changes": [
                {
                    "employee_id": d.hibob_id,
                    "email": d.email,
                    "current": d.current,
                    "candidate": d.candidate,
                    "fields": {k: {"old": o, "new": n} for k, (o, n) in d.fields.items()},
                    "reason": d.reason,
                }
                for d in differences
            ],
            "held": held,
            "held_reason": proposed.held_reason,
        }
        print(json.dumps(document, indent=2, default=str), file=out)
    else:
        _print(differences, proposed.held_reason, held, out)
    return HELD_EXIT if proposed.held else 0


def _print(
    differences: list[Difference], held_reason: str | None, held: list[dict[str, Any]], out: TextIO
) -> None:
    counts = count_differences(differences)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(
        f"preview: {len(differences)} employees decided differently"
        + (f" ({summary})" if summary else ""),
        file=out,
    )
    for d in differences:
        changed = "; ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in d.fields.items())
        print(
            f"  {d.hibob_id}  {d.email or '-'}  {d.current} -> {d.candidate}"
            + (f"  [{changed}]" if changed else "")
            + (f"  {d.reason}" if d.reason else ""),
            file=out,
        )
    if held:
        print(f"limits: CANDIDATE's plan would hold {len(held)}: {held_reason}", file=out)
    else:
        print("limits: CANDIDATE's plan passes the safety limits", file=out)
