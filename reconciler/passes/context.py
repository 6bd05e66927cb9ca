"""The context of one pass: the clients, the store and the settings it runs with, the clock, and
the settings turned into the pure core's `Limits` and apply's `ApplySettings`.

Built by the composition root (`commands.wiring`); used by every pass. Decides and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.clients.hibob import HibobClient
from reconciler.clients.learning import LearningClient
from reconciler.config import Settings
from reconciler.core.plan import Limits
from reconciler.passes.apply import ApplySettings
from reconciler.store.database import Store


@dataclass
class PassContext:
    """What a pass needs, built once by the CLI or the service."""

    settings: Settings
    hibob: HibobClient
    learning: LearningClient
    store: Store

    @property
    def limits(self) -> Limits:
        """The settings as the core's `Limits`, made once per settings object (a pass, and
        the previous settings' plan beside it, each ask several times)."""
        made = self.__dict__.get("_limits")
        if made is None or made[0] is not self.settings:
            made = (self.settings, limits(self.settings))
            self.__dict__["_limits"] = made
        return made[1]

    def close_clients(self) -> None:
        """Close both HTTP clients' connections (the store belongs to whoever opened it)."""
        self.hibob.close()
        self.learning.close()


def now_utc() -> datetime:
    return datetime.now(UTC)


def limits(settings: Settings) -> Limits:
    return Limits(
        out_of_scope=settings.sync.out_of_scope,
        activate_users=settings.learning.activate_users,
        max_deactivations=settings.sync.max_deactivations,
        max_deactivation_ratio=settings.sync.max_deactivation_ratio,
        deactivation_ratio_min_count=settings.sync.deactivation_ratio_min_count,
        max_membership_removals=settings.sync.max_membership_removals,
        max_unknown_ratio=settings.sync.max_missing_field_ratio,
        is_external_id_enabled=bool(settings.learning.external_id_platform),
    )


def apply_settings(settings: Settings, core_limits: Limits | None = None) -> ApplySettings:
    return ApplySettings(
        group_id=settings.learning.default_group_id,
        role=settings.learning.default_role,
        send_invitation_email=settings.learning.send_invitation_email,
        external_id_platform=settings.learning.external_id_platform,
        quarantine_base_seconds=settings.sync.interval_minutes * 60,
        limits=core_limits if core_limits is not None else limits(settings),
    )
