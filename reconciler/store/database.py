"""Store: the SQLite file behind the reconciler (sqlite3, WAL, numbered migrations).

One object joining the table families, each in its own module: `snapshot` (applied state, links,
emails seen), `journal` (passes and actions), `holds` (held deactivations, quarantine, skips) and
`hints` (webhook hints, admin requests, service state), `shadow` (shadow mode's
disagreements), over `connection` (the file, transactions,
the instance lock) and `schema` (migrations). Thread-safe (one connection behind a lock). Called by
passes, the service and the commands. Never stores a secret.
"""

from __future__ import annotations

from reconciler.store.hints import HintTables
from reconciler.store.holds import HoldTables
from reconciler.store.journal import JournalTables
from reconciler.store.schema import MIGRATIONS, utc_text
from reconciler.store.shadow import ShadowTables
from reconciler.store.snapshot import SnapshotTables, state_from_json, state_to_json

__all__ = ["MIGRATIONS", "Store", "state_from_json", "state_to_json", "utc_text"]


class Store(SnapshotTables, JournalTables, HoldTables, HintTables, ShadowTables):
    """The reconciler's database: every table family on one connection."""
