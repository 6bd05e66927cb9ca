"""What a pass is asked and which settings its decisions depend on.

`PassOptions` (what an admin or the trigger asks of a pass), the decision settings (saved by
each successful pass; the next one compares them to hold what a settings change would cut
off) and the settings fingerprint the source keys hold. Part of `reconcile`; reads the store
only for the last pass's settings and outcome, writes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from reconciler.config import Settings
from reconciler.core.custom_fields import ResolvedCustomFields
from reconciler.core.fingerprint import compute_settings_fingerprint
from reconciler.core.plan import Limits
from reconciler.core.vocabulary import PassKind, PassOutcome
from reconciler.passes.context import PassContext, limits

log = logging.getLogger("reconciler.passes.reconcile")  # the pass's records keep one logger name
NO_CUSTOM_FIELDS = ResolvedCustomFields()
DECISION_SETTINGS_KEY = "decision_settings"  # service_state: those of the last successful pass


@dataclass(frozen=True)
class PassOptions:
    """What an admin or the trigger asks of a pass, beyond its kind."""

    employee: str | None = None  # targeted: a Hibob id or any email the employee has had
    allow_deactivations: bool = False
    released: frozenset[str] = frozenset()  # held deactivations an admin released
    retry_quarantined: bool | None = None  # None: full passes and after a failed pass
    is_migration: bool = False  # shadow mode and its cut-over (PlanInput.is_migration)


def settings_fingerprint(
    settings: Settings,
    custom: ResolvedCustomFields = NO_CUSTOM_FIELDS,
    core_limits: Limits | None = None,
) -> str:
    """What the source keys hold of the settings: the decision settings (the held-change
    check's notion, which any decision-relevant setting joins), the plan's other knobs and
    the custom fields as resolved in 360Learning (ids, types, choices)."""
    learning = settings.learning
    return compute_settings_fingerprint(
        decision_settings(settings),
        repr(core_limits if core_limits is not None else limits(settings)),
        f"{learning.default_group_id}\0{learning.default_role}",
        json.dumps(asdict(custom), sort_keys=True, default=_canonical),
    )


def _canonical(value: object) -> object:
    """Sets in a stable order (their repr follows string hashing, which varies by process)."""
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    return str(value)


def decision_settings(settings: Settings) -> str:
    """The settings a decision depends on (scope, mapping, sync policies), as stable JSON."""
    policies = ("prehire", "prehire_days_before", "out_of_scope")
    return json.dumps(
        {
            "scope": settings.scope.model_dump(mode="json", by_alias=True),
            "mapping": settings.mapping.model_dump(mode="json", by_alias=True),
            "sync": {name: getattr(settings.sync, name) for name in policies},
        },
        sort_keys=True,
    )


def _previous_settings(services: PassContext) -> Settings | None:
    """The decision settings of the last successful pass, when they differ from these."""
    raw = services.store.load_service_state().get(DECISION_SETTINGS_KEY)
    settings = services.settings
    if not raw or raw == decision_settings(settings):
        return None
    try:
        old = json.loads(raw)
        return settings.model_copy(
            update={
                "scope": type(settings.scope).model_validate(old["scope"]),
                "mapping": type(settings.mapping).model_validate(old["mapping"]),
                "sync": settings.sync.model_copy(update=old["sync"]),
            }
        )
    except (ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
        log.warning("the stored settings of the last pass are unreadable: nothing held for them")
        return None


def _retry_quarantined(services: PassContext, kind: PassKind, options: PassOptions) -> bool:
    if options.retry_quarantined is not None:
        return options.retry_quarantined
    if kind == PassKind.FULL:
        return True
    previous = services.store.list_passes(2, include_dry_runs=False)
    # The first pass after a failed one (credentials fixed?) retries everyone.
    return len(previous) > 1 and previous[1].outcome == PassOutcome.FAILED
