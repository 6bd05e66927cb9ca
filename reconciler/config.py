"""Settings: `settings.toml` overridden by `RECONCILER_*` environment variables (`__` = level).

Loaded once by the CLI (`load_settings`) and passed down explicitly; nothing else reads the
environment. Secrets are `SecretStr`, come from the environment or systemd credentials, and are
never printed. Unknown keys are an error, so a typo cannot silently disable a safety limit.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.errors import ConfigError

ENV_PREFIX = "RECONCILER_"
# systemd LoadCredential= names -> setting paths (read from $CREDENTIALS_DIRECTORY).
CREDENTIAL_FILES = {
    "hibob_service_user_id": ("hibob", "service_user_id"),
    "hibob_service_user_token": ("hibob", "service_user_token"),
    "learning_client_id": ("learning", "client_id"),
    "learning_client_secret": ("learning", "client_secret"),
    "webhooks_upsert_secret": ("webhooks", "upsert_secret"),
    "webhooks_deactivation_secret": ("webhooks", "deactivation_secret"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HibobSettings(_Section):
    base_url: str = "https://api.hibob.com/v1"
    """Hibob API root, including /v1."""
    service_user_id: str = ""
    """API service user id (secret-free, but supplied with the token)."""
    service_user_token: SecretStr = SecretStr("")
    """API service user token: environment or systemd credential only."""
    extra_fields: list[str] = []
    """More Hibob field ids to read (e.g. custom fields used in scope conditions)."""
    timeout_seconds: float = 60.0
    """Per-request timeout; a large company's search can take a while."""
    search_per_minute: float = Field(45.0, gt=0, le=50)
    """Search calls per minute; Hibob allows 50 (stay below it)."""
    reads_per_minute: float = Field(45.0, gt=0)
    """Single-employee reads and named lists per minute (Hibob's limit is not published)."""


class LearningSettings(_Section):
    base_url: str = "https://app.360learning.com"
    """360Learning host (EU app.360learning.com, US app.us.360learning.com)."""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    default_group_id: str = ""
    """Group every created user joins (API v2 requires one membership on create)."""
    default_role: str = "learner"
    send_invitation_email: bool = False
    activate_users: bool = True
    """Activate users at once (SSO platforms) instead of leaving them invited."""
    max_writes_per_second: float = Field(8.0, gt=0)
    max_reads_per_second: float = Field(40.0, gt=0)
    external_id_platform: str = "hibob"
    """Platform name for external-id links; "" = do not write them."""
    timeout_seconds: float = 30.0


class Condition(_Section):
    field: str
    op: Literal["equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty"]
    value: str | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _operands_fit_operator(self) -> Condition:
        if self.op in ("equals", "not_equals") and self.value is None:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'value'")
        if self.op in ("in", "not_in") and not self.values:
            raise ValueError(f"condition on {self.field}: op {self.op!r} needs 'values'")
        return self


class ScopeGroup(_Section):
    conditions: list[Condition] = []


class ScopeSettings(_Section):
    groups: list[ScopeGroup] = []
    """Groups are ORed, conditions inside a group are ANDed; no group = everyone."""


class GroupRule(_Section):
    field: str
    label: str
    group_id: str
    role: str = "learner"


class MappingSettings(_Section):
    organization: str = "work.department"
    """Hibob field id whose label becomes `organization`, or "" for none."""
    lang: str = "en"
    lang_field: str = ""
    manager: bool = True
    deactivate_on_last_day: bool = False
    timezone: str = "UTC"
    """IANA timezone in which dates (start, last day) are decided, e.g. "America/New_York"."""
    groups: list[GroupRule] = []

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as "
                             "'Europe/Paris')") from None
        return value


class SyncSettings(_Section):
    interval_minutes: float = Field(15.0, gt=0)
    full_resync_cron: str = "0 3 * * *"
    prehire: Literal["provision", "at_start"] = "provision"
    prehire_days_before: int = Field(0, ge=0)
    """With prehire = "at_start": provision this many days before the start date."""
    out_of_scope: Literal["deactivate", "ignore"] = "deactivate"
    max_deactivations: int = Field(25, ge=0)
    max_deactivation_ratio: float = Field(0.05, ge=0, le=1)
    max_missing_field_ratio: float = Field(0.1, ge=0, le=1)
    """Share of employees missing a deciding field above which deactivations are skipped."""
    shutdown_grace_seconds: float = Field(8.0, gt=0, le=9.5)
    """On SIGTERM, how long the pass in flight may finish before the service exits anyway."""


class WebhookSettings(_Section):
    listen: str = "127.0.0.1:8480"
    upsert_secret: SecretStr = SecretStr("")
    deactivation_secret: SecretStr = SecretStr("")
    ignored_events: list[str] = ["employee.left"]
    max_body_bytes: int = 1_048_576
    coalesce_seconds: float = 0.5


class StoreSettings(_Section):
    path: str = "reconciler.db"


class NotifySettings(_Section):
    webhook_url: SecretStr = SecretStr("")
    """Slack- or Teams-compatible incoming webhook ({"text": ...}); "" = no alerts. Secret-ish:
    never logged in full."""
    failed_passes: int = Field(3, ge=1)
    """Alert after this many scheduled passes failed in a row (and again on recovery)."""
    timeout_seconds: float = Field(5.0, gt=0, le=30)

    @model_validator(mode="after")
    def _url_is_http(self) -> NotifySettings:
        url = self.webhook_url.get_secret_value()
        if url and not url.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")  # never echo it: it holds a token
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    hibob: HibobSettings = HibobSettings()
    learning: LearningSettings = LearningSettings()
    scope: ScopeSettings = ScopeSettings()
    mapping: MappingSettings = MappingSettings()
    sync: SyncSettings = SyncSettings()
    webhooks: WebhookSettings = WebhookSettings()
    store: StoreSettings = StoreSettings()
    notify: NotifySettings = NotifySettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (init kwargs carry the file's content).
        return (env_settings, init_settings)


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None, *,
                  read_file: bool = True) -> Settings:
    """Read the TOML file (if present), systemd credentials, then the environment.

    `read_file=False` ignores any settings file (the demo and tests build settings from
    `environ` alone). Raises ConfigError with one line naming the offending key.
    """
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None or ENV_PREFIX + "CONFIG" in environ
    file_path = Path(path or environ.get(ENV_PREFIX + "CONFIG", "settings.toml"))
    data: dict[str, Any] = {}
    if not read_file:
        pass
    elif file_path.exists():
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {file_path}: {exc}") from None
    elif explicit:
        raise ConfigError(f"settings file {file_path} does not exist")
    _merge_credentials(data, environ)
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    try:
        # pydantic-settings reads os.environ itself; give it exactly `environ`'s RECONCILER_ keys.
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def _merge_credentials(data: dict[str, Any], environ: dict[str, str]) -> None:
    folder = environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return
    for name, (section, key) in CREDENTIAL_FILES.items():
        file = Path(folder) / name
        if file.is_file():
            data.setdefault(section, {})[key] = file.read_text(encoding="utf-8").strip()


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    # Never echo the input: it may be a secret.
    return f"setting {key}: {message}"


def require_secrets(settings: Settings, *names: str) -> None:
    """Raise ConfigError naming the first empty secret/credential among dotted `names`."""
    for name in names:
        section, key = name.split(".")
        value = getattr(getattr(settings, section), key)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(f"setting {name} is missing: set {env}")
