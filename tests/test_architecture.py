"""The functional core stays pure: scope, desired and plan import no HTTP, SQLite, scheduler,
client or store module (design.md, "Optional but cheap")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE = ("scope", "desired", "plan", "plan_employee", "plan_matching", "plan_state")
FORBIDDEN = (
    "httpx",
    "sqlite3",
    "sqlite_utils",
    "apscheduler",
    "waitress",
    "reconciler.clients",
    "reconciler.store.database",
    "reconciler.passes.apply",
    "reconciler.passes.apply_accounts",
    "reconciler.passes.apply_deferred",
    "reconciler.passes.apply_links",
    "reconciler.passes.apply_runner",
    "reconciler.passes.reconcile",
    "reconciler.passes.reconcile_hibob",
    "reconciler.passes.reconcile_learning",
    "reconciler.passes.reconcile_results",
    "reconciler.passes.reconcile_settings",
    "reconciler.service.lifecycle",
    "reconciler.service.runner",
    "reconciler.service.webhooks",
)
PACKAGE = Path(__file__).resolve().parents[1] / "reconciler" / "core"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_core_module_imports_no_effectful_module(module: str) -> None:
    imported = imported_modules(PACKAGE / f"{module}.py")
    bad = sorted(
        name for name in imported if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert bad == [], f"reconciler/{module}.py imports {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import httpx\nfrom reconciler.store.database import Store\n")
    assert {"httpx", "reconciler.store.database"} <= imported_modules(sample)
