"""The simulators are split by resource (issue 14): no sandbox module grows past ~400 lines, and
the names tests, the demo and the benchmark import still come from the modules they always did."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SANDBOX = Path(__file__).resolve().parents[1] / "reconciler" / "sandbox"
# ~400 (design.md); company.py's name and department tables take it a little past.
MAX_LINES = 420
IMPORTED_TODAY = {
    "reconciler.sandbox.learning": ("LearningSimulator", "PROVISIONING_SCOPES", "REAL_LIFETIME"),
    "reconciler.sandbox.hibob": ("HibobSimulator", "LOOPBACK_HOSTS", "ping_bodies", "sign"),
    "reconciler.sandbox.company": ("DOMAIN", "STANDARD_FIELDS", "generate_company"),
    "reconciler.sandbox.faults": ("DropConnection", "Faults", "SimulatedTimeout"),
    "reconciler.sandbox.sender": ("WebhookSender",),
    "reconciler.sandbox.server": ("serve",),
}


def test_every_simulator_module_stays_under_the_size_of_one_resource() -> None:
    sizes = {
        str(path.relative_to(SANDBOX)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(SANDBOX.rglob("*.py"))
    }

    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


@pytest.mark.parametrize("module", sorted(IMPORTED_TODAY))
def test_public_simulator_names_import_from_their_old_modules(module: str) -> None:
    imported = importlib.import_module(module)

    assert [name for name in IMPORTED_TODAY[module] if not hasattr(imported, name)] == []
