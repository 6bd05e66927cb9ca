"""Settings: `settings.toml`, then systemd credentials, then `RECONCILER_<SECTION>__<KEY>`
environment variables, each overriding the one before.

Loaded once by the CLI (`load_settings`) and passed down explicitly; nothing else reads the
environment, and loading never changes it. Secrets are `SecretStr` and are never printed. An
unknown key, section or variable is an error, so a typo cannot silently disable a safety limit.
The sections' models are `settings_sections`'s and `settings_rules`'s; `Settings` gathers them.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.errors import ConfigError
from reconciler.settings_rules import MappingSettings, ScopeSettings
from reconciler.settings_sections import (
    AdminSettings,
    HibobSettings,
    LearningSettings,
    NotifySettings,
    StoreSettings,
    SyncSettings,
    WebhookSettings,
)

log = logging.getLogger("reconciler.config")

ENV_PREFIX = "RECONCILER_"
CONFIG_VARIABLE = ENV_PREFIX + "CONFIG"
"""The one RECONCILER_ variable that is not a setting: the settings file's path."""
# systemd LoadCredential= names -> setting paths (read from $CREDENTIALS_DIRECTORY).
CREDENTIAL_FILES = {
    "hibob_service_user_id": ("hibob", "service_user_id"),
    "hibob_service_user_token": ("hibob", "service_user_token"),
    "learning_client_id": ("learning", "client_id"),
    "learning_client_secret": ("learning", "client_secret"),
    "webhooks_upsert_secret": ("webhooks", "upsert_secret"),
    "webhooks_deactivation_secret": ("webhooks", "deactivation_secret"),
    "notify_webhook_url": ("notify", "webhook_url"),  # holds a token: a secret too
    "admin_password_hash": ("admin", "password_hash"),  # a hash, yet never shown either
}


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    hibob: HibobSettings = HibobSettings()
    """Hibob API: where and as whom employees are read."""
    learning: LearningSettings = LearningSettings()
    """360Learning API v2: where and how users are written."""
    scope: ScopeSettings = ScopeSettings()
    """Who to listen for."""
    mapping: MappingSettings = MappingSettings()
    """How a Hibob employee becomes a 360Learning user."""
    sync: SyncSettings = SyncSettings()
    """Schedule, pre-hires and the deactivation breaker."""
    webhooks: WebhookSettings = WebhookSettings()
    """The Hibob webhook receiver of `reconciler run`."""
    store: StoreSettings = StoreSettings()
    """The local database."""
    notify: NotifySettings = NotifySettings()
    """Optional chat alerts (held pass, quarantine, failed passes, recovery)."""
    admin: AdminSettings = AdminSettings()
    """The self-hosted admin page of `reconciler run` (off unless `listen` is set)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what `load_settings` gathered from its explicit sources: never os.environ.
        return (init_settings,)


class EnvironSource(PydanticBaseSettingsSource):
    """`RECONCILER_<SECTION>__<KEY>` variables of a given mapping; lists and tables as JSON.

    Every RECONCILER_ variable must name a setting (the file's rule): a misspelt section or a
    single underscore is a ConfigError naming the variable, not a silently ignored value.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ
        self.origins: dict[tuple[str, ...], str] = {}
        """Setting path -> the variable it came from (for error messages)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        sections = self.settings_cls.model_fields
        for variable, value in sorted(self.environ.items()):
            name = variable.upper()
            if not name.startswith(ENV_PREFIX) or name == CONFIG_VARIABLE:
                continue
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            model = _section_model(sections.get(section))
            if model is None:
                raise ConfigError(f"environment variable {variable}: {_not_a_setting(name)}")
            if not key:
                raise ConfigError(
                    f"environment variable {variable}: name one setting, as in "
                    f"{env_name(section, '<key>')}"
                )
            field = model.model_fields.get(key)
            if field is None:
                raise ConfigError(
                    f"environment variable {variable}: unknown setting {section}.{key}"
                )
            data.setdefault(section, {})[key] = (
                _json(variable, value) if _is_complex(field.annotation) else value
            )
            self.origins[(section, key)] = variable
        return data


def _section_model(field: FieldInfo | None) -> type[BaseModel] | None:
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_complex(annotation: Any) -> bool:
    if get_origin(annotation) in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _json(variable: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ConfigError(
            f'environment variable {variable}: not valid JSON (a list is written ["a", "b"])'
        ) from None


def _not_a_setting(name: str) -> str:
    """Why an upper-case RECONCILER_ name is no setting, with the likely meant one if any."""
    rest = name[len(ENV_PREFIX) :].lower()
    for section, field in Settings.model_fields.items():
        model = _section_model(field)
        if (
            model
            and rest.startswith(section + "_")
            and rest[len(section) + 1 :] in model.model_fields
        ):
            return (
                f"not a setting; did you mean {env_name(section, rest[len(section) + 1 :])} "
                "(two underscores between section and key)?"
            )
    return (
        f"unknown section; variables are {ENV_PREFIX}<SECTION>__<KEY> with a section of "
        f"{', '.join(Settings.model_fields)}"
    )


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    read_file: bool = True,
) -> Settings:
    """Read the TOML file (if present), systemd credentials, then the environment.

    `environ` defaults to the process environment and is only read. `read_file=False` ignores
    any settings file (the demo and tests build settings from `environ` alone). Raises
    ConfigError with one line naming the offending key or variable.
    """
    environ = dict(os.environ if environ is None else environ)
    file_data = _read_file(path, environ) if read_file else {}
    credentials = _read_credentials(environ.get("CREDENTIALS_DIRECTORY"))
    env_source = EnvironSource(Settings, environ)
    data = _deep_update(_deep_update(file_data, credentials), env_source())
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, env_source.origins)) from None


def _read_file(path: str | Path | None, environ: Mapping[str, str]) -> dict[str, Any]:
    explicit = path is not None or CONFIG_VARIABLE in environ
    file_path = settings_file_path(path, environ)
    if not file_path.exists():
        if explicit:
            raise ConfigError(f"settings file {file_path} does not exist")
        return {}
    try:
        data = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {file_path}: {exc}") from None
    _warn_about_secrets(file_path, data)
    return data


def secret_settings() -> list[tuple[str, str]]:
    """(section, key) of every secret: the credential files' and every SecretStr field."""
    found = list(CREDENTIAL_FILES.values())
    for section, field in Settings.model_fields.items():
        model = _section_model(field)
        found += [
            (section, key)
            for key, inner in (model.model_fields if model else {}).items()
            if inner.annotation is SecretStr and (section, key) not in found
        ]
    return found


def _warn_about_secrets(file_path: Path, data: Mapping[str, Any]) -> None:
    # Accepted (refusing would break a working install), but a world-readable file is no
    # place for a secret. Names only, never the value.
    if advice := describe_secrets_in_file(file_path, data):
        log.warning("%s", advice)


def describe_secrets_in_file(file_path: Path, data: Mapping[str, Any] | None = None) -> str:
    """One line naming the secrets a settings file holds and where they belong ("" if none);
    `data` is the parsed file (read here when None). Names only, never a value."""
    if data is None:
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return ""
    found = [
        (section, key)
        for section, key in secret_settings()
        if isinstance(data.get(section), dict) and data[section].get(key)
    ]
    if not found:
        return ""
    credentials = [name for name, path in CREDENTIAL_FILES.items() if path in found]
    return (
        f"settings file {file_path} holds the secret(s) "
        + ", ".join(f"{s}.{k}" for s, k in found)
        + ": remove them from the file and set "
        + ", ".join(env_name(s, k) for s, k in found)
        + (f" (or the systemd credential(s) {', '.join(credentials)})" if credentials else "")
        + " instead"
    )


def settings_file_path(path: str | Path | None, environ: Mapping[str, str]) -> Path:
    """The settings file `load_settings` reads: `path`, else $RECONCILER_CONFIG, else
    ./settings.toml."""
    return Path(path or environ.get(CONFIG_VARIABLE, "settings.toml"))


def _read_credentials(folder: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if not folder:
        return data
    for name, (section, key) in CREDENTIAL_FILES.items():
        file = Path(folder) / name
        if file.is_file():
            data.setdefault(section, {})[key] = file.read_text(encoding="utf-8").strip()
    return data


def _deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_validation_error(
    exc: ValidationError, origins: Mapping[tuple[str, ...], str] | None = None
) -> str:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    variable = next((origins[loc[:n]] for n in (2, 1) if origins and loc[:n] in origins), None)
    source = f" (from {variable})" if variable else ""
    # Never echo the input: it may be a secret.
    return f"setting {'.'.join(loc)}{source}: {message}"


def require_secrets(settings: Settings, *names: str) -> None:
    """Raise one ConfigError naming every empty secret/credential among dotted `names`, each
    with both ways to give it (the environment variable, the systemd credential file)."""
    by_setting = {setting: file for file, setting in CREDENTIAL_FILES.items()}
    missing = []
    for name in names:
        section, key = name.split(".")
        value = getattr(getattr(settings, section), key)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text:
            way = env_name(section, key)
            if credential := by_setting.get((section, key)):
                way += f" or the credential file {credential}"
            missing.append(f"{name} ({way})")
    if len(missing) == 1:
        raise ConfigError(f"setting {missing[0]} is missing")
    if missing:
        raise ConfigError(f"{len(missing)} settings are missing: " + "; ".join(missing))
