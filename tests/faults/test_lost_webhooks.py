"""Lost webhooks: the simulated Hibob loses 10% of its webhook deliveries during HR churn.

Two identical companies get the same changes and the same lost deliveries. One is run as the
webhook-only relay this product replaces (polling off: every delivered webhook -> re-read that
employee -> targeted pass, nothing else); the other as the reconciler (the service's hint path,
then its next scheduled pass). The relay ends with wrong users; the reconciler with none.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import httpx
import pytest

from faults.churn import apply_churn
from faults.conftest import FaultWorld, note, record_figure, suite_seed
from faults.oracle import find_differences
from reconciler.sandbox.sender import WebhookSender
from reconciler.service.lifecycle import Service
from reconciler.service.metrics import Metrics
from reconciler.service.webhooks import Hint, create_app

pytestmark = pytest.mark.faults

DROP_RATIO = 0.10
ROUNDS, CHANGES_PER_ROUND = 10, 10
SECRETS = {
    "RECONCILER_WEBHOOKS__UPSERT_SECRET": "lost-upsert-secret",
    "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": "lost-deactivation-secret",
}
# Rehires are left out: restoring a rehired manager loses subordinates' links in the core
# today (test_found_breaks.py), which would blur what this test compares.
KINDS = ("title", "title", "department", "email", "terminate", "hire", "manager")


def _world(tmp_path: Path) -> FaultWorld:
    world = FaultWorld(tmp_path, size=80, seed=11, **SECRETS)
    # Shared emails are an identity question (test_found_breaks.py), not this test's.
    for hibob_id in world.company.bad_records["duplicate_email"]:
        world.hibob.update_employee(hibob_id, email=f"unique.{hibob_id}@acme.example")
    first = world.sync()
    assert first.outcome == "ok", first.report.failures if first.report else first.error
    return world


def _sender(world: FaultWorld, on_hint, seed: int) -> WebhookSender:
    app = create_app(
        world.settings.webhooks, on_hint=on_hint, is_ready=lambda: (True, "ok"), metrics=Metrics()
    )
    client = httpx.Client(transport=httpx.WSGITransport(app=app))
    return WebhookSender(
        world.hibob,
        upsert_url="http://127.0.0.1/webhooks/hibob/upsert",
        upsert_secret=SECRETS["RECONCILER_WEBHOOKS__UPSERT_SECRET"],
        deactivation_url="http://127.0.0.1/webhooks/hibob/deactivation",
        deactivation_secret=SECRETS["RECONCILER_WEBHOOKS__DEACTIVATION_SECRET"],
        drop_ratio=DROP_RATIO,
        rng=random.Random(seed),
        client=client,
    )


def _wrong_users(world: FaultWorld) -> set[str]:
    return {
        line.split(":", 1)[0]
        for line in find_differences(world.hibob, world.learning, world.db, world.former_mails)
    }


def test_lost_webhooks_leave_a_webhook_only_relay_wrong_and_the_reconciler_right(
    tmp_path: Path,
) -> None:
    seed = suite_seed()
    relay, reconciler = _world(tmp_path / "relay"), _world(tmp_path / "reconciler")

    def relay_pass(hint: Hint) -> None:  # re-read that employee, targeted pass, nothing else
        relay.sync("targeted", employee=hint.hibob_id)

    clock = {"now": reconciler.now}
    service = Service(
        reconciler.services, clock=lambda: clock["now"], monotonic=lambda: clock["now"].timestamp()
    )
    senders = {
        "relay": _sender(relay, relay_pass, seed),
        "reconciler": _sender(reconciler, service.hints.on_hint, seed),
    }
    for number in range(ROUNDS):
        for name, world in (("relay", relay), ("reconciler", reconciler)):
            changes = apply_churn(
                world.hibob,
                random.Random(seed + number),
                CHANGES_PER_ROUND,
                world.former_mails,
                tag=f"w{number}",
                kinds=KINDS,
            )
            for change, hibob_id in changes:
                senders[name].send_change(change, hibob_id)
        clock["now"] += dt.timedelta(seconds=30)
        service.hints.process_hints()
    relay_wrong = _wrong_users(relay)
    hints_only_wrong = _wrong_users(reconciler)

    scheduled = service.run_incremental()

    reconciler_wrong = _wrong_users(reconciler)
    deliveries = senders["relay"].deliveries
    lost = senders["relay"].lost
    assert [(d.event_type, d.hibob_id) for d in lost] == [
        (d.event_type, d.hibob_id) for d in senders["reconciler"].lost
    ]
    assert all(d.status in (200, 202) for d in deliveries if d.status is not None)
    record_figure("lost webhooks: deliveries", len(deliveries))
    record_figure("lost webhooks: deliveries lost", len(lost))
    record_figure("lost webhooks: wrong users, webhook-only relay", len(relay_wrong))
    record_figure(
        "lost webhooks: wrong users, reconciler after its next pass", len(reconciler_wrong)
    )
    note(
        f"lost webhooks (seed {seed}): {len(lost)} of {len(deliveries)} deliveries lost; "
        f"webhook-only relay ends with {len(relay_wrong)} wrong users; the reconciler has "
        f"{len(hints_only_wrong)} before its next scheduled pass and {len(reconciler_wrong)} "
        "after it"
    )
    assert lost, "no delivery was lost: the comparison proves nothing"
    assert relay_wrong, "the relay should have missed the changes whose webhooks were lost"
    assert scheduled is not None and scheduled.outcome == "ok", scheduled
    assert reconciler_wrong == set()
