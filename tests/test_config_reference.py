"""The shipped settings files and the settings fields agree: every key in the files is a field,
every field has a docstring and appears in the files, and the service's copy differs only where
it must (an absolute store.path)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from reconciler.config import Settings, env_name, load_settings, secret_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "settings.toml"
DEPLOYED = ROOT / "deploy" / "settings.toml"
SECRETS = set(secret_settings())


def models(model: type[BaseModel] = Settings) -> dict[str, type[BaseModel]]:
    """Every settings model reachable from Settings, by name (sections and list items)."""
    found = {model.__name__: model}
    for field in model.model_fields.values():
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found.update(models(inner))
    return found


def section_fields() -> list[tuple[str, str]]:
    sections = Settings.model_fields
    return [
        (section, key)
        for section, field in sections.items()
        for key in field.annotation.model_fields
    ]


@pytest.mark.parametrize("path", [EXAMPLE, DEPLOYED], ids=["example", "deployed"])
def test_every_key_in_the_shipped_settings_files_is_a_setting(path):
    # Unknown keys at any depth (sections, scope conditions, group rules) fail to load.
    assert load_settings(path, environ={}) is not None


@pytest.mark.parametrize("name", sorted(models()))
def test_every_settings_field_has_a_docstring(name):
    model = models()[name]

    undocumented = [key for key, field in model.model_fields.items() if not field.description]

    assert undocumented == [], f"{name}: no docstring under {undocumented}"


def test_every_setting_appears_in_the_example_file_or_by_its_variable_if_secret():
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    text = EXAMPLE.read_text(encoding="utf-8")

    missing = [
        f"{section}.{key}"
        for section, key in section_fields()
        if (section, key) not in SECRETS and key not in data.get(section, {})
    ]
    secrets_unnamed = [env_name(*secret) for secret in SECRETS if env_name(*secret) not in text]

    assert (missing, secrets_unnamed) == ([], [])


def test_no_secret_is_written_in_the_shipped_files():
    for path in (EXAMPLE, DEPLOYED):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert [s for s in SECRETS if s[1] in data.get(s[0], {})] == [], path


def test_the_service_settings_are_the_example_but_for_the_header_and_an_absolute_store_path():
    def body(path: Path) -> list[str]:
        lines = path.read_text(encoding="utf-8").splitlines()
        start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
        return [line for line in lines[start:] if not re.match(r"path\s*=", line)]

    deployed = load_settings(DEPLOYED, environ={})

    assert body(DEPLOYED) == body(EXAMPLE)
    assert deployed.store.path == "/var/lib/reconciler/reconciler.db"
    assert load_settings(EXAMPLE, environ={}).store.path == "reconciler.db"
