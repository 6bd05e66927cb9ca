"""requirements.lock pins every dependency pyproject.toml names, so `make` installs what CI tested
(refresh it with `make lock` after changing a dependency)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[normalise(name)] = version
    return pins


def test_every_runtime_and_dev_dependency_is_pinned_in_the_lock_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {normalise(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in wanted}
    missing = sorted(names - pinned().keys())
    assert missing == [], f"not in requirements.lock: {missing}; run `make lock`"


def test_every_pin_is_an_exact_version() -> None:
    assert all(re.fullmatch(r"\d+(\.\w+)*", v) for v in pinned().values()), pinned()
