"""Prometheus metrics of the running service, rendered by the webhook app's `GET /metrics`.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so tests and several
instances never collide. The service feeds it around each pass (`pass_started`, `set_progress`,
`record_pass`) and hands it state sources (`watch_state`) that are read at scrape time, as are
the API clients' cumulative call counts. No I/O here beyond calling those sources.
"""

from __future__ import annotations

import logging
import math
import platform
from collections.abc import Callable, Mapping
from functools import partial
from importlib import metadata

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from reconciler.core.vocabulary import (
    ActionKind,
    ActionOutcome,
    DisagreementKind,
    PassKind,
    PassOutcome,
    WebhookResult,
    WebhookSource,
)

# `_created` series are undocumented noise for this service's users; the switch is global.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

log = logging.getLogger("reconciler.service.metrics")

# Outcomes of a pass that completed: "held" still applied creates and updates (product.md §3).
SUCCESSFUL_OUTCOMES = frozenset(o for o in PassOutcome if o.is_success)
PASS_KINDS = tuple(PassKind)
PASS_OUTCOMES = tuple(o for o in PassOutcome if o is not PassOutcome.DRY_RUN)
ACTIONS = tuple(a for a in ActionKind if a is not ActionKind.SKIP)
ACTION_OUTCOMES = (ActionOutcome.OK, ActionOutcome.FAILED, ActionOutcome.SUPERSEDED)
WEBHOOKS = tuple(WebhookSource)
WEBHOOK_OUTCOMES = tuple(WebhookResult)
ApiStatsSource = Callable[[], Mapping[str, tuple[int, int]]]
"""Returns {service: (calls, rate_limited)}, cumulative since the process started."""
StateSource = Callable[[], float]

# Announce the classic text format every scraper accepts; recent prometheus_client versions
# announce 1.0.0 by default, which only differs for non-ASCII names (we have none).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_STATE_GAUGES = {
    "pending_hints": ("reconciler_pending_hints", "Webhook hints stored, not yet applied."),
    "held_deactivations": (
        "reconciler_held_deactivations",
        "Deactivations held by the breaker, awaiting release.",
    ),
    "quarantined": (
        "reconciler_quarantined_employees",
        "Employees in quarantine after repeated failures.",
    ),
    "managed_users": (
        "reconciler_managed_users",
        "360Learning users the reconciler linked and keeps active.",
    ),
}


class Metrics:
    """The reconciler's series, prefixed `reconciler_`, plus the standard process_* series."""

    def __init__(
        self,
        api_stats: ApiStatsSource | None = None,
        *,
        version: str | None = None,
        last_success_epoch: float | None = None,
    ) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._api = _ApiCollector(api_stats)
        self._passes = Counter(
            "reconciler_passes_total",
            "Passes by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self._actions = Counter(
            "reconciler_actions_total",
            "Plan actions applied, by outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self._duration = Histogram(
            "reconciler_pass_duration_seconds",
            "Wall time of a pass.",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self._last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "Unix time the last successful pass finished.",
            registry=r,
        )
        self._webhooks = Counter(
            "reconciler_webhook_deliveries_total",
            "Webhook deliveries by webhook and outcome.",
            ["webhook", "outcome"],
            registry=r,
        )
        self._in_progress = Gauge(
            "reconciler_pass_in_progress", "1 while a pass of this kind runs.", ["kind"], registry=r
        )
        self._done = Gauge(
            "reconciler_pass_progress_done", "Items the running pass has processed.", registry=r
        )
        self._total = Gauge(
            "reconciler_pass_progress_total",
            "Items the running pass has to process (0 when unknown).",
            registry=r,
        )
        self._rate = Gauge(
            "reconciler_pass_progress_rate",
            "Items per second the running pass processes.",
            registry=r,
        )
        build = Gauge(
            "reconciler_build_info",
            "Version of the running reconciler (always 1).",
            ["version", "python"],
            registry=r,
        )
        build.labels(version or _installed_version(), platform.python_version()).set(1)
        self._state_values: dict[str, float] = dict.fromkeys(_STATE_GAUGES, 0.0)
        self._state_sources: dict[str, StateSource] = {}
        for key, (name, text) in _STATE_GAUGES.items():
            Gauge(name, text, registry=r).set_function(partial(self._read_state, key))
        self._preinitialise()
        if last_success_epoch is not None:
            self._last_success.set(last_success_epoch)
        r.register(self._api)
        self._shadow = _ShadowCollector()
        r.register(self._shadow)

    def _preinitialise(self) -> None:
        # Series exist at 0 from the first scrape, so rate() and alerts see the first event.
        for kind in PASS_KINDS:
            self._in_progress.labels(kind).set(0)
            for outcome in PASS_OUTCOMES:
                self._passes.labels(kind, outcome)
        for action in ACTIONS:
            for action_outcome in ACTION_OUTCOMES:
                self._actions.labels(action, action_outcome)
        for webhook in WEBHOOKS:
            for result in WEBHOOK_OUTCOMES:
                self._webhooks.labels(webhook, result)

    # -- passes -----------------------------------------------------------------------------
    def pass_started(self, kind: str) -> None:
        self._in_progress.labels(kind).set(1)
        if kind != PassKind.TARGETED:  # targeted passes run beside a long one: its progress stays
            self.set_progress(0, 0, 0.0)

    def set_progress(self, done: int, total: int, rate: float) -> None:
        """Progress of the running pass: items done, items in all (0 = unknown), items/s."""
        self._done.set(done)
        self._total.set(total)
        self._rate.set(rate)

    def record_pass(
        self,
        kind: str,
        outcome: str,
        duration_seconds: float,
        finished_at_epoch: float,
        actions: Mapping[tuple[str, str], int],
    ) -> None:
        """Count one finished pass; `actions` maps (action, outcome) to a count."""
        self._in_progress.labels(kind).set(0)
        if kind != "targeted":
            self._rate.set(0)
        self._passes.labels(kind, outcome).inc()
        self._duration.labels(kind).observe(duration_seconds)
        for (action, action_outcome), count in actions.items():
            if count:
                self._actions.labels(action, action_outcome).inc(count)
        if outcome in SUCCESSFUL_OUTCOMES:
            self._last_success.set(finished_at_epoch)

    # -- stored state -----------------------------------------------------------------------
    def watch_state(self, **sources: StateSource) -> None:
        """Read these gauges from `sources` at each scrape (keys: pending_hints,
        held_deactivations, quarantined, managed_users)."""
        unknown = set(sources) - set(_STATE_GAUGES)
        if unknown:
            raise ValueError(f"unknown state gauges: {', '.join(sorted(unknown))}")
        self._state_sources.update(sources)

    def watch_shadow(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Read the open shadow disagreements by kind from `source` at each scrape."""
        self._shadow.source = source

    def set_state(self, pending_hints: int, held_deactivations: int, quarantined: int) -> None:
        """Fixed values for the gauges no source watches."""
        self._state_values.update(
            pending_hints=pending_hints,
            held_deactivations=held_deactivations,
            quarantined=quarantined,
        )

    def _read_state(self, key: str) -> float:
        source = self._state_sources.get(key)
        if source is None:
            return self._state_values[key]
        try:
            return float(source())
        except Exception:
            # A scrape must answer even when the database is busy: NaN says "unknown".
            log.warning("metrics: reading %s failed", key, exc_info=True)
            return math.nan

    # -- API and webhooks -------------------------------------------------------------------
    def record_webhook(self, webhook: str, outcome: str) -> None:
        self._webhooks.labels(webhook, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE


def _installed_version() -> str:
    try:
        return metadata.version("reconciler")
    except metadata.PackageNotFoundError:
        return "unknown"


class _ApiCollector(Collector):
    """Counters whose values the API clients already count; read at scrape time."""

    def __init__(self, source: ApiStatsSource | None) -> None:
        self.source = source

    def collect(self) -> list[CounterMetricFamily]:
        stats = self.source() if self.source is not None else {}
        calls = CounterMetricFamily(
            "reconciler_api_calls", "HTTP requests sent, by service.", labels=["service"]
        )
        limited = CounterMetricFamily(
            "reconciler_api_rate_limited", "Responses 429 received, by service.", labels=["service"]
        )
        for service, (call_count, limited_count) in sorted(stats.items()):
            calls.add_metric([service], call_count)
            limited.add_metric([service], limited_count)
        return [calls, limited]


class _ShadowCollector(Collector):
    """Shadow mode's open disagreements by kind, every kind present (0 outside shadow mode)."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] | None = None

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "reconciler_shadow_disagreements",
            "Open shadow-mode disagreements with what 360Learning holds, by kind.",
            labels=["kind"],
        )
        try:
            found: dict[str, float] = dict(self.source()) if self.source is not None else {}
        except Exception:
            log.warning("metrics: reading the shadow disagreements failed", exc_info=True)
            found = {str(kind): math.nan for kind in DisagreementKind}
        for kind in DisagreementKind:
            family.add_metric([str(kind)], found.get(str(kind), 0))
        return [family]
