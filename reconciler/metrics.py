"""Prometheus metrics of the running service, rendered by the webhook app's `GET /metrics`.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so tests and several
instances never collide. The `run` command feeds it after each pass (`record_pass`, `set_state`);
API call counts are read from the clients' cumulative stats at scrape time. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Outcomes of a pass that completed: "held" still applied creates and updates (product.md §3).
SUCCESSFUL_OUTCOMES = frozenset({"ok", "held"})
ApiStatsSource = Callable[[], Mapping[str, tuple[int, int]]]
"""Returns {service: (calls, rate_limited)}, cumulative since the process started."""

# Announce the classic text format every scraper accepts; recent prometheus_client versions
# announce 1.0.0 by default, which only differs for non-ASCII names (we have none).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The reconciler's series, all prefixed `reconciler_`.

    Gauges of stored state (pending hints, held deactivations, quarantined employees) are pushed
    with `set_state` by the thread that owns the Store: a scrape never touches SQLite.
    """

    def __init__(self, api_stats: ApiStatsSource | None = None) -> None:
        self.registry = CollectorRegistry()
        self._api = _ApiCollector(api_stats)
        r = self.registry
        self._passes = Counter("reconciler_passes_total", "Passes by kind and outcome.",
                               ["kind", "outcome"], registry=r)
        self._actions = Counter("reconciler_actions_total", "Plan actions applied, by outcome.",
                                ["action", "outcome"], registry=r)
        self._duration = Histogram("reconciler_pass_duration_seconds", "Wall time of a pass.",
                                   ["kind"], buckets=_DURATION_BUCKETS, registry=r)
        self._pending = Gauge("reconciler_pending_hints", "Webhook hints stored, not yet applied.",
                              registry=r)
        self._held = Gauge("reconciler_held_deactivations",
                           "Deactivations held by the breaker, awaiting release.", registry=r)
        self._quarantined = Gauge("reconciler_quarantined_employees",
                                  "Employees in quarantine after repeated failures.", registry=r)
        self._last_success = Gauge("reconciler_last_success_timestamp_seconds",
                                   "Unix time the last successful pass finished.", registry=r)
        self._webhooks = Counter("reconciler_webhook_deliveries_total",
                                 "Webhook deliveries by webhook and outcome.",
                                 ["webhook", "outcome"], registry=r)
        self._done = Gauge("reconciler_pass_progress_done",
                           "Items the running pass has processed.", registry=r)
        self._total = Gauge("reconciler_pass_progress_total",
                            "Items the running pass has to process (0 when unknown).", registry=r)
        self._rate = Gauge("reconciler_pass_progress_rate",
                           "Items per second the running pass processes.", registry=r)
        r.register(self._api)

    def record_pass(self, kind: str, outcome: str, duration_seconds: float,
                    finished_at_epoch: float, actions: Mapping[tuple[str, str], int]) -> None:
        """Count one finished pass; `actions` maps (action, outcome) to a count."""
        self._passes.labels(kind, outcome).inc()
        self._duration.labels(kind).observe(duration_seconds)
        for (action, action_outcome), count in actions.items():
            if count:
                self._actions.labels(action, action_outcome).inc(count)
        if outcome in SUCCESSFUL_OUTCOMES:
            self._last_success.set(finished_at_epoch)

    def set_progress(self, done: int, total: int, rate: float) -> None:
        """Progress of the running pass: items done, items in all (0 = unknown), items/s."""
        self._done.set(done)
        self._total.set(total)
        self._rate.set(rate)

    def set_state(self, pending_hints: int, held_deactivations: int, quarantined: int) -> None:
        self._pending.set(pending_hints)
        self._held.set(held_deactivations)
        self._quarantined.set(quarantined)

    def record_api(self, service: str, calls: int, rate_limited: int) -> None:
        """Set one service's cumulative totals (an `ApiStats` snapshot), replacing the last ones."""
        self._api.pushed[service] = (calls, rate_limited)

    def record_webhook(self, webhook: str, outcome: str) -> None:
        self._webhooks.labels(webhook, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE


class _ApiCollector(Collector):
    """Counters whose values the API clients already count; read at scrape time."""

    def __init__(self, source: ApiStatsSource | None) -> None:
        self.source = source
        self.pushed: dict[str, tuple[int, int]] = {}

    def collect(self) -> list[CounterMetricFamily]:
        stats = dict(self.pushed)
        if self.source is not None:
            stats.update(self.source())
        calls = CounterMetricFamily("reconciler_api_calls", "HTTP requests sent, by service.",
                                    labels=["service"])
        limited = CounterMetricFamily("reconciler_api_rate_limited",
                                      "Responses 429 received, by service.", labels=["service"])
        for service, (call_count, limited_count) in sorted(stats.items()):
            calls.add_metric([service], call_count)
            limited.add_metric([service], limited_count)
        return [calls, limited]
