"""The import-linter contracts catch every upward import: each test plants one wrong import into a
temporary copy of the package and asserts that `lint-imports` fails (and that the copy, unplanted,
passes), so a contract that silently stopped covering a folder is found here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

PLANTS = {
    "the core imports the store": ("core/models.py", "import reconciler.store.database"),
    "the core imports an HTTP library": ("core/plan.py", "import httpx"),
    "the core imports SQLite": ("core/scope.py", "import sqlite3"),
    "a client imports a pass": ("clients/hibob.py", "import reconciler.passes.reconcile"),
    "a cycle between hibob's parts": (
        "clients/hibob_records.py",
        "import reconciler.clients.hibob",
    ),
    "the store imports a pass": ("store/database.py", "import reconciler.passes.progress"),
    "a pass imports the service": ("passes/reconcile.py", "import reconciler.service.lifecycle"),
    "the service imports a command": ("service/hints.py", "import reconciler.commands.status"),
    "the foundation imports the core": ("config.py", "import reconciler.core.models"),
    "a settings section imports a simulator": (
        "settings_sections.py",
        "import reconciler.sandbox.faults",
    ),
    "the settings rules import a simulator": (
        "settings_rules.py",
        "import reconciler.sandbox.company",
    ),
    "the product imports a simulator": (
        "passes/reconcile.py",
        "import reconciler.sandbox.learning",
    ),
    "a simulator imports the product": ("sandbox/hibob/people.py", "import reconciler.core.models"),
    "a cycle through the scheduler": (
        "service/scheduler.py",
        "import reconciler.service.lifecycle",
    ),
    "a cycle inside a pass": ("passes/apply.py", "import reconciler.passes.reconcile"),
    "a part of reconcile imports reconcile": (
        "passes/reconcile_hibob.py",
        "import reconciler.passes.reconcile",
    ),
    "a part of reconcile imports its sibling": (
        "passes/reconcile_results.py",
        "import reconciler.passes.reconcile_learning",
    ),
    "a part of apply imports apply": ("passes/apply_links.py", "import reconciler.passes.apply"),
    "the runner's base imports a part": (
        "passes/apply_runner.py",
        "import reconciler.passes.apply_accounts",
    ),
    "a new module imports upwards": ("passes/newcomer.py", "import reconciler.commands.cli"),
    "a cycle between two new modules": ("store/a_new.py", "import reconciler.store.b_new"),
}


def lint_copy(tmp_path: Path, plant: tuple[str, str] | None) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / "copy"
    shutil.copytree(
        ROOT / "reconciler", copy / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    if plant is not None:
        relative, line = plant
        target = copy / "reconciler" / relative
        before = target.read_text(encoding="utf-8") if target.exists() else ""
        target.write_text(before + f"\n{line}  # planted\n", encoding="utf-8")
        if relative == "store/a_new.py":
            (copy / "reconciler/store/b_new.py").write_text("import reconciler.store.a_new\n")
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_unplanted_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(PLANTS))
def test_lint_imports_fails_when_an_import_goes_the_wrong_way(tmp_path: Path, case: str) -> None:
    result = lint_copy(tmp_path, PLANTS[case])
    assert result.returncode != 0, f"{case}: lint-imports kept every contract\n{result.stdout}"
    assert "BROKEN" in result.stdout
