"""What the admin page's pages show, read from the store (and from the CLI's own status and
explain, handed in by the composition root as `AdminViews`): employee search, the explain
text as sections, history filters and its CSV / JSON-lines downloads.

Used by `admin_page` only. Reads, never writes; renders nothing (the templates do) and holds
no secret.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.config import Settings
from reconciler.core.vocabulary import ActionKind, ActionOutcome
from reconciler.store.database import Store
from reconciler.store.records import JournalRecord, RequestRecord

HISTORY_SHOWN = 500
SEARCH_SHOWN = 50
HISTORY_COLUMNS = (
    "pass_id",
    "at",
    "employee_id",
    "email",
    "action",
    "fields",
    "outcome",
    "reason",
    "error",
)
ACTIONS = tuple(ActionKind)
OUTCOMES = tuple(ActionOutcome)


@dataclass(frozen=True)
class AdminViews:
    """What the CLI already computes, lent to the page so that nothing is computed twice."""

    collect_status: Callable[[Store, Settings, datetime], dict[str, Any]]
    """`reconciler status --json`'s object."""
    explain: Callable[[str, datetime], tuple[int, str]]
    """`reconciler explain ID`: its exit code and its text."""
    parse_since: Callable[[str, datetime], str]
    """`history --since`'s parser; raises ValueError (or a subclass) on bad text."""


@dataclass
class Section:
    """One line of `explain` (`label: value`) and the indented lines below it."""

    label: str
    value: str
    rows: list[list[str]] = field(default_factory=list)


def compute_sections(text: str) -> list[Section]:
    """The explain text as sections: a line at the margin starts one, indented lines are its
    rows (split on runs of two spaces, as the CLI aligns its columns)."""
    sections: list[Section] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(" ") and sections:
            cells = [c.strip() for c in line.strip().split("  ") if c.strip()]
            sections[-1].rows.append(cells)
            continue
        label, sep, value = line.partition(": ")
        if not sep and line.endswith(":"):
            label, value = line[:-1], ""
        elif not sep or len(label) > 40:
            label, value = "", line
        sections.append(Section(label.strip(), value.strip()))
    return sections


def display_name(store: Store, hibob_id: str) -> str:
    """The name last written to 360Learning for this employee, or ""."""
    entry = store.get_entry(hibob_id)
    attributes = entry.state.attributes if entry and entry.state else {}
    return " ".join(
        str(attributes[k]) for k in ("firstName", "lastName") if attributes.get(k)
    ).strip()


def compute_names(store: Store, hibob_ids: Iterable[str]) -> dict[str, str]:
    """Hibob id -> the name last written for that employee (looked up once each)."""
    return {hibob_id: display_name(store, hibob_id) for hibob_id in dict.fromkeys(hibob_ids)}


def search_employees(store: Store, text: str) -> list[dict[str, Any]]:
    """Employees whose Hibob id, any email they had, or last applied name matches `text`."""
    wanted = text.strip()
    if not wanted:
        return []
    exact = store.find_employee_ids(wanted)
    words = wanted.lower().split()
    found = list(exact)
    for hibob_id, entry in store.load_snapshot().items():
        if hibob_id in found or len(found) >= SEARCH_SHOWN:
            continue
        attributes = entry.state.attributes if entry.state else {}
        haystack = " ".join(
            str(v)
            for v in (
                hibob_id,
                entry.email,
                attributes.get("firstName"),
                attributes.get("lastName"),
                attributes.get("mail"),
            )
            if v
        ).lower()
        if all(word in haystack for word in words):
            found.append(hibob_id)
    results = []
    for hibob_id in found[:SEARCH_SHOWN]:
        known = store.get_entry(hibob_id)
        results.append(
            {
                "employee_id": hibob_id,
                "name": display_name(store, hibob_id),
                "email": known.email if known else None,
                "is_linked": bool(known and known.learning_user_id),
                "is_active": bool(known and known.is_active),
                "is_exact": hibob_id in exact,
            }
        )
    return results


@dataclass(frozen=True)
class HistoryFilter:
    employee: str = ""
    action: str = ""
    outcome: str = ""
    since: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.employee or self.action or self.outcome or self.since)


def list_history(
    store: Store, wanted: HistoryFilter, since_text: str | None
) -> tuple[list[JournalRecord], str | None]:
    """Matching journal rows, newest first, or why the employee cannot be found."""
    ids: list[str] | None = None
    if wanted.employee.strip():
        ids = store.find_employee_ids(wanted.employee)
        if not ids:
            ids = [r["employee_id"] for r in search_employees(store, wanted.employee)]
        if not ids:
            return [], f"no employee matches {wanted.employee!r} (a Hibob id, an email or a name)"
    rows = store.list_journal(hibob_id=ids, since=since_text, limit=None)
    rows = [
        row
        for row in rows
        if (not wanted.action or row.action == wanted.action)
        and (not wanted.outcome or row.outcome == wanted.outcome)
    ]
    rows.reverse()
    return rows, None


def render_csv(rows: Iterable[JournalRecord]) -> bytes:
    """The rows as CSV, one line each; a cell that a spreadsheet would run as a formula is
    prefixed with a quote (the text comes from Hibob)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in rows:
        shown = row.as_json()
        writer.writerow([_cell(shown, column) for column in HISTORY_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if column == "fields":
        return " ".join(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_json_lines(rows: Iterable[JournalRecord]) -> bytes:
    return "".join(json.dumps(row.as_json(), ensure_ascii=False) + "\n" for row in rows).encode(
        "utf-8"
    )


def describe_request(request: RequestRecord) -> str:
    """What an admin request asked for, in words."""
    kind, args = request.kind, request.args
    if kind == "resync":
        return "full resync" + (
            " (quarantined employees retried)" if args.get("retry_quarantined") else ""
        )
    if kind == "targeted":
        return f"reconcile employee {args.get('employee')}"
    if kind == "release":
        return "release the held deactivations" + (
            f" (list {args['token']})" if args.get("token") else ""
        )
    if kind == "quarantine-clear":
        ids = args.get("ids")
        return "clear quarantine for " + (", ".join(ids) if ids else "everyone")
    if kind == "sync":
        return f"{args.get('pass_kind', 'incremental')} pass"
    return str(kind)
