"""Settings: the sections for the two APIs, the schedule and its safety limits, the webhook
receiver, the store, alerts and the admin page (one docstring under each field).

Part of the foundation: `config.Settings` gathers these sections with `settings_rules`'s; the
clients and the service take the section they need. Imports no layer.
"""

from __future__ import annotations

from datetime import UTC
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


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
