"""`reconciler shadow report [--since WHEN] [--json]` (product §2.4): the disagreements shadow
passes recorded, misses (open past `sync.shadow_lag_minutes`) apart from lag (fixed by the
incumbent within it). Reads the database only; the data is `passes.shadow.shadow_report`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

from reconciler.config import Settings
from reconciler.passes.shadow import shadow_report
from reconciler.store.database import Store

SECTIONS = (
    ("misses", "misses (open past {lag} min)"),
    ("pending", "open, within the lag ({lag} min)"),
    ("lag", "lag (fixed by the incumbent within {lag} min)"),
    ("late", "fixed late (after {lag} min)"),
)


def run_shadow_report(
    store: Store,
    settings: Settings,
    now: datetime,
    out: TextIO,
    *,
    since: datetime | None = None,
    as_json: bool = False,
) -> int:
    report = shadow_report(store, settings, now, since)
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str), file=out)
    else:
        print_shadow_report(report, out)
    return 0


def print_shadow_report(report: dict[str, Any], out: TextIO) -> None:
    lag = f"{report['lag_minutes']:g}"
    mode = report.get("mode", "shadow")
    print(
        f"shadow report (sync.mode = {mode!r}, lag {lag} min): {report['open']} open, "
        f"{report['applied']} applied by the cut-over",
        file=out,
    )
    if mode != "shadow":
        print("  not in shadow mode: passes apply; nothing new is recorded", file=out)
    if not any(report[name] for name, _ in SECTIONS):
        since = f" since {report['since']}" if report.get("since") else ""
        print(f"  no disagreement{since}", file=out)
        return
    for name, title in SECTIONS:
        rows = report[name]
        if not rows:
            continue
        counts = ", ".join(f"{kind} {n}" for kind, n in report["counts"][name].items())
        print(f"{title.format(lag=lag)}: {counts}", file=out)
        for row in rows:
            print(f"  {format_disagreement(row)}", file=out)


def format_disagreement(row: dict[str, Any]) -> str:
    """One line: who, what kind, both values, for how long."""
    what = row["kind"] + (f" {row['subject']}" if row["subject"] else "")
    values = ""
    if row["wanted"] is not None or row["holds"] is not None:
        values = f": wanted {_shown(row['wanted'])}, 360Learning holds {_shown(row['holds'])}"
    seen = f"first seen {row['first_seen_at']}, last seen {row['last_seen_at']}"
    if row.get("closed_at"):
        seen += f", closed {row['closed_at']}"
    who = f"{row['employee_id']} {row['email'] or '-'}"
    return f"{who} {what}{values} ({seen}, {row['minutes']:g} min)"


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "nothing"
    return repr(value) if isinstance(value, str) else str(value)
