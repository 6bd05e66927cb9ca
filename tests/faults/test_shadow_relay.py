"""Shadow mode beside the incumbent: a webhook-only relay (as in test_lost_webhooks.py) keeps the
simulated 360Learning while the simulated Hibob loses 10% of its webhook deliveries; a reconciler
service in shadow mode, on a database of its own, runs its scheduled passes over the same two
simulators. It writes nothing, and its report names exactly the users the relay got wrong; the
cut-over (mode = "apply") then leaves none wrong, and no one with two accounts."""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import pytest

from faults.churn import apply_churn
from faults.conftest import FaultWorld, note, record_figure, suite_seed
from faults.oracle import find_differences
from faults.test_lost_webhooks import CHANGES_PER_ROUND, KINDS, ROUNDS, _sender, _world
from reconciler.passes.reconcile import run_pass
from reconciler.passes.shadow import shadow_report
from reconciler.service.lifecycle import Service
from reconciler.service.webhooks import Hint

pytestmark = pytest.mark.faults

_MAIL = re.compile(r"^user \S+ \((.*)\)")


def _shadow_beside(relay: FaultWorld, path: Path) -> FaultWorld:
    """A reconciler in shadow mode over the relay's simulators, with a database of its own."""
    shadow = FaultWorld(path, size=1, seed=11)
    shadow.hibob, shadow.learning = relay.hibob, relay.learning
    shadow.environ = {**relay.environ, "RECONCILER_STORE__PATH": str(shadow.db)}
    shadow.build(RECONCILER_SYNC__MODE="shadow")
    return shadow


def _wrong_employees(relay: FaultWorld) -> set[str]:
    """The employees the oracle finds wrong; an account nobody should have is its owner's."""
    owners: dict[str, str] = {}
    for hibob_id, record in relay.hibob.records.items():
        if isinstance(mail := record.get("root.email"), str):
            owners.setdefault(mail.strip().lower(), hibob_id)
    for hibob_id, mails in relay.former_mails.items():
        for mail in mails:
            owners.setdefault(mail.strip().lower(), hibob_id)
    found = set()
    for line in find_differences(relay.hibob, relay.learning, relay.db, relay.former_mails):
        head = line.split(":", 1)[0]
        if match := _MAIL.match(line):
            head = owners.get(match[1].lower(), line)
        found.add(head)
    return found


def test_a_shadow_service_beside_a_webhook_only_relay_names_exactly_the_users_it_got_wrong(
    tmp_path: Path,
) -> None:
    seed = suite_seed()
    relay = _world(tmp_path / "relay")
    shadow = _shadow_beside(relay, tmp_path / "shadow")
    clock = {"now": relay.now}
    service = Service(
        shadow.services, clock=lambda: clock["now"], monotonic=lambda: clock["now"].timestamp()
    )

    def relay_pass(hint: Hint) -> None:  # re-read that employee, targeted pass, nothing else
        relay.sync("targeted", employee=hint.hibob_id)

    sender = _sender(relay, relay_pass, seed)
    shadow_writes = 0
    for number in range(ROUNDS):
        changes = apply_churn(
            relay.hibob,
            random.Random(seed + number),
            CHANGES_PER_ROUND,
            relay.former_mails,
            tag=f"s{number}",
            kinds=KINDS,
        )
        for change, hibob_id in changes:
            sender.send_change(change, hibob_id)
        clock["now"] += dt.timedelta(minutes=15)
        before = len(relay.learning_writes())
        result = service.run_incremental()
        shadow_writes += len(relay.learning_writes()) - before
        assert result is not None and result.outcome == "ok", result

    wrong = _wrong_employees(relay)
    report = shadow_report(shadow.store, shadow.settings, clock["now"])
    named = {r["employee_id"] for r in report["misses"] + report["pending"]}
    record_figure("shadow beside a relay: deliveries lost", len(sender.lost))
    record_figure("shadow beside a relay: users the relay got wrong", len(wrong))
    record_figure("shadow beside a relay: employees the shadow report names", len(named))
    record_figure("shadow beside a relay: disagreements closed as lag", len(report["lag"]))
    record_figure("shadow beside a relay: 360Learning writes by the shadow service", shadow_writes)
    note(
        f"shadow beside a relay (seed {seed}): {len(sender.lost)} of {len(sender.deliveries)} "
        f"deliveries lost; the relay got {len(wrong)} users wrong; the shadow report names "
        f"{len(named)} ({report['counts']['misses']} misses, {report['counts']['pending']} "
        f"within the lag), {len(report['lag'])} closed as lag; the shadow wrote {shadow_writes}"
    )
    assert sender.lost, "no delivery was lost: the comparison proves nothing"
    assert wrong, "the relay should have missed the changes whose webhooks were lost"
    assert shadow_writes == 0
    assert named == wrong, (sorted(named - wrong), sorted(wrong - named))

    shadow.build(RECONCILER_SYNC__MODE="apply")
    cutover = run_pass(shadow.services, "incremental", now=clock["now"] + dt.timedelta(minutes=15))
    assert (cutover.outcome, cutover.kind) == ("ok", "full"), cutover.error
    assert find_differences(relay.hibob, relay.learning, shadow.db, relay.former_mails) == []
