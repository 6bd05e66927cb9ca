"""Wiring: builds the clients, the store and the clock from settings.

Used by the CLI, the service, resync and the demo; the only place that turns settings into the
objects a pass needs (`Services`) and into the pure core's `Limits` and apply's `ApplySettings`.
It decides nothing and sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from reconciler.apply import ApplySettings
from reconciler.config import Settings, require_secrets
from reconciler.hibob import HibobClient
from reconciler.learning import LearningClient
from reconciler.plan import Limits
from reconciler.store import Store

SECRETS = (
    "hibob.service_user_id",
    "hibob.service_user_token",
    "learning.client_id",
    "learning.client_secret",
    "learning.default_group_id",
)


@dataclass
class Services:
    """What a pass needs, built once by the CLI or the service."""

    settings: Settings
    hibob: HibobClient
    learning: LearningClient
    store: Store


def build_services(
    settings: Settings,
    *,
    hibob_transport: httpx.BaseTransport | None = None,
    learning_transport: httpx.BaseTransport | None = None,
    store: Store | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Services:
    require_secrets(settings, *SECRETS)
    return Services(
        settings=settings,
        hibob=HibobClient(settings.hibob, transport=hibob_transport, sleep=sleep, clock=clock),
        learning=LearningClient(
            settings.learning, transport=learning_transport, sleep=sleep, clock=clock
        ),
        store=store or Store(settings.store.path),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def limits(settings: Settings) -> Limits:
    return Limits(
        out_of_scope=settings.sync.out_of_scope,
        activate_users=settings.learning.activate_users,
        max_deactivations=settings.sync.max_deactivations,
        max_deactivation_ratio=settings.sync.max_deactivation_ratio,
        max_unknown_ratio=settings.sync.max_missing_field_ratio,
        is_external_id_enabled=bool(settings.learning.external_id_platform),
    )


def apply_settings(settings: Settings) -> ApplySettings:
    return ApplySettings(
        group_id=settings.learning.default_group_id,
        role=settings.learning.default_role,
        send_invitation_email=settings.learning.send_invitation_email,
        external_id_platform=settings.learning.external_id_platform,
        quarantine_base_seconds=settings.sync.interval_minutes * 60,
        limits=limits(settings),
    )
