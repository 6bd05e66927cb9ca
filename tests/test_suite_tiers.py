"""`make test` does not even collect tests/faults, tests/browser and tests/e2e (their imports cost
each worker about 0.75 s of CPU). That is only right while every test module there belongs to
another tier: a module-level `pytestmark` naming faults, browser or slow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
IGNORED_BY_MAKE_TEST = ("faults", "browser", "e2e")  # the Makefile's --ignore list
OTHER_TIERS = {"faults", "browser", "slow"}


def _module_marks(path: Path) -> set[str]:
    """The marker names of a module's `pytestmark` (one mark or a list of them)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List) else [node.value]
            marks = [v.func if isinstance(v, ast.Call) else v for v in values]  # mark(...) too
            return {m.attr for m in marks if isinstance(m, ast.Attribute)}
    return set()


@pytest.mark.parametrize("folder", IGNORED_BY_MAKE_TEST)
def test_every_module_make_test_ignores_belongs_to_another_tier(folder: str) -> None:
    modules = sorted((TESTS / folder).glob("test_*.py"))
    assert modules, f"tests/{folder} holds no test module"
    untiered = [m.name for m in modules if not _module_marks(m) & OTHER_TIERS]
    assert not untiered, f"tests/{folder}: no faults, browser or slow mark, so no run: {untiered}"


def test_the_mark_reader_sees_a_missing_mark(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("import pytest\n\ndef test_x():\n    pass\n")
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\npytestmark = [pytest.mark.faults, pytest.mark.timeout(9)]\n"
    )
    assert _module_marks(tmp_path / "test_plain.py") == set()
    assert _module_marks(tmp_path / "test_marked.py") == {"faults", "timeout"}


def test_the_makefile_ignores_exactly_these_folders() -> None:
    makefile = (TESTS.parent / "Makefile").read_text()
    recipe = makefile.split("\ntest: ", 1)[1].split("\n\n", 1)[0]
    ignored = {part.split("=", 1)[1] for part in recipe.split() if part.startswith("--ignore=")}
    assert ignored == {f"tests/{f}" for f in IGNORED_BY_MAKE_TEST}
