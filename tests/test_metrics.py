"""The Prometheus series the service exposes (service.metrics), read back from the registry."""

from __future__ import annotations

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from reconciler.service.metrics import Metrics

FINISHED_AT = 1_900_000_000.0


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_record_pass_counts_the_pass_its_actions_and_its_duration():
    metrics = Metrics()

    metrics.record_pass(
        "incremental",
        "ok",
        2.0,
        FINISHED_AT,
        {("create", "ok"): 3, ("update", "failed"): 1, ("deactivate", "ok"): 0},
    )
    metrics.record_pass("incremental", "ok", 40.0, FINISHED_AT + 900, {("create", "ok"): 2})

    assert value(metrics, "reconciler_passes_total", kind="incremental", outcome="ok") == 2
    assert value(metrics, "reconciler_actions_total", action="create", outcome="ok") == 5
    assert value(metrics, "reconciler_actions_total", action="update", outcome="failed") == 1
    assert value(metrics, "reconciler_actions_total", action="deactivate", outcome="ok") == 0
    assert value(metrics, "reconciler_pass_duration_seconds_count", kind="incremental") == 2
    assert value(metrics, "reconciler_pass_duration_seconds_sum", kind="incremental") == 42.0
    assert (
        value(metrics, "reconciler_pass_duration_seconds_bucket", kind="incremental", le="5.0") == 1
    )


def test_last_success_moves_on_ok_and_held_passes_but_not_on_failed_ones():
    metrics = Metrics()

    metrics.record_pass("full", "ok", 1.0, FINISHED_AT, {})
    metrics.record_pass("incremental", "failed", 1.0, FINISHED_AT + 60, {})
    after_failure = value(metrics, "reconciler_last_success_timestamp_seconds")
    metrics.record_pass("incremental", "held", 1.0, FINISHED_AT + 120, {})

    assert after_failure == FINISHED_AT
    assert value(metrics, "reconciler_last_success_timestamp_seconds") == FINISHED_AT + 120
    assert value(metrics, "reconciler_passes_total", kind="incremental", outcome="failed") == 1


def test_set_state_replaces_the_stored_state_gauges():
    metrics = Metrics()

    metrics.set_state(pending_hints=4, held_deactivations=30, quarantined=2)
    metrics.set_state(pending_hints=0, held_deactivations=30, quarantined=1)

    assert value(metrics, "reconciler_pending_hints") == 0
    assert value(metrics, "reconciler_held_deactivations") == 30
    assert value(metrics, "reconciler_quarantined_employees") == 1


def test_api_counters_are_read_from_the_stats_source_at_each_scrape():
    stats = {"hibob": (1, 0), "learning": (10, 2)}
    metrics = Metrics(api_stats=lambda: stats)

    first = value(metrics, "reconciler_api_calls_total", service="learning")
    stats["learning"] = (25, 3)

    assert first == 10
    assert value(metrics, "reconciler_api_calls_total", service="learning") == 25
    assert value(metrics, "reconciler_api_rate_limited_total", service="learning") == 3
    assert value(metrics, "reconciler_api_calls_total", service="hibob") == 1


def test_render_is_prometheus_text_holding_every_series():
    metrics = Metrics(api_stats=lambda: {"hibob": (1, 0)})
    metrics.record_pass("incremental", "ok", 1.0, FINISHED_AT, {("create", "ok"): 1})
    metrics.record_webhook("upsert", "accepted")

    body, content_type = metrics.render()

    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert {
        "reconciler_passes",
        "reconciler_actions",
        "reconciler_pass_duration_seconds",
        "reconciler_api_calls",
        "reconciler_api_rate_limited",
        "reconciler_pending_hints",
        "reconciler_held_deactivations",
        "reconciler_quarantined_employees",
        "reconciler_last_success_timestamp_seconds",
        "reconciler_webhook_deliveries",
    } <= names


def test_instances_keep_their_own_registry_and_leave_the_global_one_alone():
    first, second = Metrics(), Metrics()

    first.record_pass("full", "ok", 1.0, FINISHED_AT, {})

    assert value(second, "reconciler_passes_total", kind="full", outcome="ok") == 0
    assert prometheus_client.REGISTRY.get_sample_value("reconciler_pending_hints") is None


def test_counter_labels_are_exported_at_zero_before_anything_happens():
    metrics = Metrics()

    assert value(metrics, "reconciler_passes_total", kind="full", outcome="failed") == 0
    assert value(metrics, "reconciler_passes_total", kind="incremental", outcome="held") == 0
    assert value(metrics, "reconciler_actions_total", action="deactivate", outcome="failed") == 0
    assert (
        value(
            metrics,
            "reconciler_webhook_deliveries_total",
            webhook="upsert",
            outcome="bad_signature",
        )
        == 0
    )


def test_no_created_series_are_exported():
    metrics = Metrics()
    metrics.record_pass("full", "ok", 1.0, FINISHED_AT, {("create", "ok"): 1})

    body, _ = metrics.render()

    assert b"_created" not in body


def test_process_and_build_info_series_are_exported():
    body, _ = Metrics(version="1.2.3").render()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}

    assert "process_resident_memory_bytes" in families or "process_cpu_seconds" in families
    (sample,) = families["reconciler_build_info"].samples
    assert sample.labels["version"] == "1.2.3" and sample.value == 1


def test_state_gauges_read_their_source_at_each_scrape():
    pending = [1]
    metrics = Metrics()
    metrics.watch_state(
        pending_hints=lambda: pending[0],
        held_deactivations=lambda: 2,
        quarantined=lambda: 3,
        managed_users=lambda: 40,
    )

    first = value(metrics, "reconciler_pending_hints")
    pending[0] = 0

    assert first == 1 and value(metrics, "reconciler_pending_hints") == 0
    assert value(metrics, "reconciler_held_deactivations") == 2
    assert value(metrics, "reconciler_quarantined_employees") == 3
    assert value(metrics, "reconciler_managed_users") == 40


def test_a_failing_state_source_does_not_break_the_scrape():
    def broken() -> int:
        raise RuntimeError("database is locked")

    metrics = Metrics()
    metrics.watch_state(pending_hints=broken)

    body, _ = metrics.render()

    assert b"reconciler_pending_hints NaN" in body


def test_pass_in_progress_and_progress_gauges_follow_the_pass():
    metrics = Metrics()

    metrics.pass_started("full")
    metrics.set_progress(done=1200, total=20000, rate=310.5)
    during = (
        value(metrics, "reconciler_pass_in_progress", kind="full"),
        value(metrics, "reconciler_pass_progress_done"),
        value(metrics, "reconciler_pass_progress_total"),
        value(metrics, "reconciler_pass_progress_rate"),
    )
    metrics.record_pass("full", "ok", 60.0, FINISHED_AT, {})

    assert during == (1, 1200, 20000, 310.5)
    assert value(metrics, "reconciler_pass_in_progress", kind="full") == 0


def test_last_success_can_be_restored_from_the_database_at_start():
    metrics = Metrics(last_success_epoch=FINISHED_AT)

    assert value(metrics, "reconciler_last_success_timestamp_seconds") == FINISHED_AT


def test_a_restarted_service_exports_the_last_success_from_the_database(tmp_path):
    from conftest import World

    from reconciler.service.lifecycle import Service

    world = World(tmp_path, size=5)
    Service(world.services, clock=lambda: world.now).run_incremental()

    restarted = Service(world.build(), clock=lambda: world.now)

    assert (
        value(restarted.metrics, "reconciler_last_success_timestamp_seconds")
        == world.now.timestamp()
    )
    assert value(restarted.metrics, "reconciler_managed_users") == len(world.active_employees())


def test_pending_hints_gauge_follows_the_database_between_passes(tmp_path):
    from conftest import World

    from reconciler.service.lifecycle import Service
    from reconciler.service.webhooks import Hint

    world = World(tmp_path, size=5)
    service = Service(world.services, clock=lambda: world.now)
    service.hints.on_hint(Hint("123", "employee.updated", None, "upsert"))

    assert value(service.metrics, "reconciler_pending_hints") == 1


def test_open_shadow_disagreements_are_a_gauge_by_kind_read_at_each_scrape():
    metrics = Metrics()
    assert value(metrics, "reconciler_shadow_disagreements", kind="missing") == 0
    counts = {"missing": 2, "fields": 5}
    metrics.watch_shadow(lambda: counts)
    assert value(metrics, "reconciler_shadow_disagreements", kind="missing") == 2
    assert value(metrics, "reconciler_shadow_disagreements", kind="not_deactivated") == 0
    counts["fields"] = 1
    assert value(metrics, "reconciler_shadow_disagreements", kind="fields") == 1
