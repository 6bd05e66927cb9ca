"""Settings: `settings.toml`, then systemd credentials, then `RECONCILER_<SECTION>__<KEY>`
environment variables, each overriding the one before.

Loaded once by the CLI (`load_settings`) and passed down explicitly; nothing else reads the
environment, and loading never changes it. Secrets are `SecretStr` and are never printed. An
unknown key, section or variable is an error, so a typo cannot silently disable a safety limit.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import Any, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.errors import ConfigError

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


class _Section(BaseModel):
    # No inf/nan anywhere: `max_writes_per_second = inf` would switch throttling off.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


class HibobSettings(_Section):
    base_url: str = "https://api.hibob.com/v1"
    """Hibob API root, including /v1 (sandbox tenants: https://api.sandbox.hibob.com/v1)."""
    service_user_id: str = ""
    """API service user id: environment or systemd credential only."""
    service_user_token: SecretStr = SecretStr("")
    """API service user token: environment or systemd credential only."""
    extra_fields: list[str] = []
    """More Hibob field ids to read; the fields of the rules, the scope and the group rules are
    requested already."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Overall deadline of one request, from connecting to the answer's last byte, however
    slowly the bytes arrive (retried like any timeout); a large company's search takes a while."""
    search_per_minute: float = Field(default=45.0, gt=0, le=50)
    """Search calls per minute; Hibob allows 50 (stay below it)."""
    reads_per_minute: float = Field(default=45.0, gt=0)
    """Single-employee reads and named lists per minute (Hibob's limit is not published)."""


class LearningSettings(_Section):
    base_url: str = "https://app.360learning.com"
    """360Learning host (EU app.360learning.com, US app.us.360learning.com)."""
    client_id: str = ""
    """API v2 client id: environment or systemd credential only."""
    client_secret: SecretStr = SecretStr("")
    """API v2 client secret: environment or systemd credential only."""
    default_group_id: str = ""
    """Group every created user joins (API v2 requires one membership on create)."""
    default_role: str = "learner"
    """Role in the default group for created users."""
    send_invitation_email: bool = False
    """Let 360Learning e-mail an invitation to each created user."""
    activate_users: bool = True
    """Activate users at once (SSO platforms) instead of leaving them invited."""
    max_writes_per_second: float = Field(default=10.0, gt=0)
    """Write rate ceiling (the company limit is ~10/s); a 429 lowers the pace adaptively."""
    max_reads_per_second: float = Field(default=40.0, gt=0)
    """Read rate."""
    external_id_platform: str = "hibob"
    """Platform name for external-id links; "" = do not write them."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Overall deadline of one request, from connecting to the answer's last byte."""


class Condition(_Section):
    field: str
    """Hibob field id whose value (its label, as Bob shows it) is compared."""
    op: Literal["equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty"]
    """equals / not_equals (value), in / not_in (values), is_empty, is_not_empty."""
    value: str | None = None
    """The label for equals / not_equals (case-sensitive)."""
    values: list[str] | None = None
    """The labels for in / not_in (case-sensitive)."""

    @model_validator(mode="after")
    def _operands_fit_operator(self) -> Condition:
        if self.op in ("equals", "not_equals") and self.value is None:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'value'")
        if self.op in ("in", "not_in") and not self.values:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'values'")
        return self


class ScopeGroup(_Section):
    conditions: list[Condition] = []
    """All must hold (AND)."""


class ScopeSettings(_Section):
    groups: list[ScopeGroup] = []
    """Groups are ORed, conditions inside a group are ANDed; no group = everyone."""


class GroupRule(_Section):
    field: str
    """Hibob field id to read."""
    label: str
    """Its label that puts the employee in the group."""
    group_id: str
    """360Learning group id."""
    role: str = "learner"
    """Role in that group."""


RULE_TARGETS = ("firstName", "lastName", "job", "organization", "phone", "lang", "custom")
"""360Learning user attributes a `[mapping.fields]` rule may set."""


class FieldRule(_Section):
    """Where one 360Learning attribute's value comes from (product §1.5)."""

    model_config = ConfigDict(populate_by_name=True)
    source_field: str = Field(default="", alias="from")
    """A Hibob field id (list fields give their label, dates YYYY-MM-DD)."""
    template: str = ""
    """Text with {field.id} placeholders, e.g. "{work.site} / {work.department}"."""
    value: str | None = None
    """A constant."""
    map: dict[str, str] = {}
    """Lookup table from the source value to the value written."""
    default: str | None = None
    """Written when the source is empty or unmapped."""
    empty: Literal["keep", "clear"] = "keep"
    """An empty Hibob value keeps the 360Learning value, or clears it."""
    on: Literal["always", "create"] = "always"
    """Written on every change, or only when the account is created or adopted."""

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        sources = [bool(self.source_field), bool(self.template), self.value is not None]
        if sum(sources) != 1:
            raise ValueError("a rule needs exactly one source: from, template or value")
        return self

    def placeholders(self) -> list[str]:
        """The Hibob field ids the rule reads."""
        if self.source_field:
            return [self.source_field]
        return re.findall(r"\{([^{}]+)\}", self.template)


class CustomFieldRule(FieldRule):
    """Where one 360Learning user custom field's value comes from (product §1.5): the field by
    `name` (resolved with GET /api/v2/custom-fields) or `custom_field_id`, and a rule."""

    name: str = ""
    """The custom field's name as defined on the platform (targetType users)."""
    custom_field_id: str = ""
    """Or its id (24 hexadecimal characters)."""

    @model_validator(mode="after")
    def _one_field(self) -> CustomFieldRule:
        if bool(self.name) == bool(self.custom_field_id):
            raise ValueError("a custom field rule names its field by name or custom_field_id")
        if self.custom_field_id and not re.fullmatch(r"[0-9a-fA-F]{24}", self.custom_field_id):
            raise ValueError("custom_field_id must be 24 hexadecimal characters")
        return self

    @property
    def label(self) -> str:
        return self.name or self.custom_field_id


class MappingSettings(_Section):
    organization: str = "work.department"
    """Hibob field id whose label becomes `organization`, or "" for none."""
    lang: str = "en"
    """Default language of created users."""
    lang_field: str = ""
    """Optional Hibob field holding a language; "" = always `lang`."""
    manager: bool = True
    """Link work.reportsTo to the 360Learning manager."""
    deactivate_on_last_day: bool = False
    """Schedule toBeDeactivatedAt from the termination or last day."""
    timezone: str = "UTC"
    """IANA timezone in which dates (start, last day) are decided, e.g. "America/New_York"."""
    groups: list[GroupRule] = []
    """Membership rules: a label of a Hibob field -> a group and role."""
    fields: dict[str, FieldRule] = {}
    """Rules for user attributes (firstName, lastName, job, organization, phone, lang,
    custom): one source (from, template or value), map, default, empty, on."""

    custom_fields: list[CustomFieldRule] = []
    """Rules for 360Learning user custom fields ([[mapping.custom_fields]]): `name` or
    `custom_field_id`, and a rule (from, template or value; map, default, empty, on)."""

    @field_validator("fields")
    @classmethod
    def _known_targets(cls, rules: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name in rules:
            if name not in RULE_TARGETS:
                raise ValueError(
                    f"{name!r} is not an attribute a rule may set ({', '.join(RULE_TARGETS)})"
                )
        return rules

    @model_validator(mode="after")
    def _one_rule_per_attribute(self) -> MappingSettings:
        if "organization" in self.fields and "organization" in self.model_fields_set:
            if self.organization:
                raise ValueError(
                    "mapping.organization and mapping.fields.organization both set organization:"
                    ' keep one (mapping.organization = "" to use the rule)'
                )
        if "lang" in self.fields and self.lang_field:
            raise ValueError("mapping.lang_field and mapping.fields.lang both set lang: keep one")
        labels = [rule.label for rule in self.custom_fields]
        if twice := sorted({label for label in labels if labels.count(label) > 1}):
            raise ValueError(
                f"mapping.custom_fields: {', '.join(map(repr, twice))} has more than one rule"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as 'Europe/Paris')"
            ) from None
        return value


class SyncSettings(_Section):
    interval_minutes: float = Field(default=15.0, gt=0)
    """Minutes between incremental passes (fractions allowed: 0.5 = 30 s)."""
    full_resync_cron: str = "0 3 * * *"
    """When the full resync runs: a 5-field crontab line, in UTC."""
    prehire: Literal["provision", "at_start"] = "provision"
    """Pre-start hires: provision at once, or at their start date."""
    prehire_days_before: int = Field(default=0, ge=0)
    """With prehire = "at_start": provision this many days before the start date."""
    out_of_scope: Literal["deactivate", "ignore"] = "deactivate"
    """What happens to a managed user whose employee leaves the scope."""
    max_deactivations: int = Field(default=25, ge=0)
    """Breaker: a pass that would deactivate more than this many users deactivates nobody."""
    max_deactivation_ratio: float = Field(default=0.05, ge=0, le=1)
    """Breaker: the same, as a share of the managed active users."""
    max_membership_removals: int = Field(default=25, ge=0)
    """Breaker: a pass that would remove more group memberships than this removes none."""
    deactivation_ratio_min_count: int = Field(default=3, ge=0)
    """The share applies only above this many deactivations (two leavers never hold a small
    company); the count always applies."""
    max_missing_field_ratio: float = Field(default=0.1, ge=0, le=1)
    """Share of employees missing a deciding field above which deactivations are skipped."""
    mode: Literal["apply", "shadow"] = "apply"
    """shadow: every pass reads both sides in full, writes nothing to 360Learning and records
    each disagreement with what it holds (`reconciler shadow report`); apply: the normal passes."""
    shadow_lag_minutes: float = Field(default=60.0, gt=0)
    """Shadow mode: a disagreement the incumbent connector fixes within this long is lag; one
    still open after it is a miss."""
    shutdown_grace_seconds: float = Field(default=8.0, gt=0, le=9.5)
    """On SIGTERM, how long the pass in flight may finish before the service exits anyway."""

    @field_validator("full_resync_cron")
    @classmethod
    def _cron_parses(cls, cron: str) -> str:
        # The scheduler parses it the same way; checking here makes `sync` and `check` fail too.
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"not a crontab line ({exc})") from None
        return cron


class WebhookSettings(_Section):
    listen: str = "127.0.0.1:8480"
    """Address the receiver, health and metrics routes listen on."""
    upsert_secret: SecretStr = SecretStr("")
    """Signing token of the Bob upsert webhook: environment or systemd credential only."""
    deactivation_secret: SecretStr = SecretStr("")
    """Signing token of the Bob deactivation webhook: environment or systemd credential only."""
    ignored_events: list[str] = ["employee.left"]
    """Event types answered 200 and otherwise ignored."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Larger bodies get 413 without being read."""
    coalesce_seconds: float = Field(default=0.5, ge=0)
    """How long the hint worker waits for a burst of deliveries to gather."""
    retention_days: int = Field(default=7, ge=1)
    """Done hints are deleted after this many days (pending and parked ones are kept)."""


class StoreSettings(_Section):
    path: str = "reconciler.db"
    """SQLite database file; absolute in a service, so every command finds the same one."""


class NotifySettings(_Section):
    webhook_url: SecretStr = SecretStr("")
    """Slack- or Teams-compatible incoming webhook ({"text": ...}); "" = no alerts. Secret-ish:
    never logged in full."""
    failed_passes: int = Field(default=3, ge=1)
    """Alert after this many scheduled passes failed in a row (and again on recovery)."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """Per-request timeout of an alert."""

    @model_validator(mode="after")
    def _url_is_http(self) -> NotifySettings:
        url = self.webhook_url.get_secret_value()
        if url and not url.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")  # never echo it: it holds a token
        return self


class AdminSettings(_Section):
    listen: str = ""
    """Address of the admin page (e.g. "127.0.0.1:8481"), its own listener; "" = no admin page."""
    password_hash: SecretStr = SecretStr("")
    """The admin password's hash, printed by `reconciler admin-password`: environment or systemd
    credential only. Required when `listen` is set."""
    session_idle_minutes: float = Field(default=30.0, gt=0, le=1440)
    """A signed-in session ends after this many minutes without a request."""
    session_max_hours: float = Field(default=12.0, gt=0, le=168)
    """... and in any case this many hours after the sign-in."""


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
