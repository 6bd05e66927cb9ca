"""One vocabulary: every name the receiver, apply and the passes can produce is a member of a
StrEnum in core.vocabulary, and the metrics expose a series for each from the first scrape."""

from __future__ import annotations

import ast
from pathlib import Path

from reconciler.core.vocabulary import ActionKind, PassKind, PassOutcome, WebhookResult
from reconciler.service.metrics import Metrics

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_webhook_result_has_a_series_for_both_webhooks_at_zero() -> None:
    metrics = Metrics()
    for result in WebhookResult:
        for webhook in ("upsert", "deactivation"):
            assert (
                value(
                    metrics, "reconciler_webhook_deliveries_total", webhook=webhook, outcome=result
                )
                == 0
            ), (webhook, result)


def test_every_action_apply_journals_has_a_series_including_group_memberships() -> None:
    metrics = Metrics()
    for action in ActionKind:
        if action is ActionKind.SKIP:
            continue
        assert value(metrics, "reconciler_actions_total", action=action, outcome="ok") == 0


def test_every_pass_kind_and_completed_outcome_has_a_series() -> None:
    metrics = Metrics()
    for kind in PassKind:
        for outcome in PassOutcome:
            if outcome is PassOutcome.DRY_RUN:
                continue
            assert value(metrics, "reconciler_passes_total", kind=kind, outcome=outcome) == 0


def test_the_receiver_answers_only_with_results_of_the_vocabulary() -> None:
    tree = ast.parse((PACKAGE / "service" / "webhooks.py").read_text(encoding="utf-8"))
    answers = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_Answer"
    ]
    assert answers, "the receiver builds its answers with _Answer"
    for call in answers:
        result = call.args[1]
        assert isinstance(result, ast.Attribute), ast.unparse(call)
        assert ast.unparse(result.value) == "WebhookResult", ast.unparse(call)
        assert result.attr in WebhookResult.__members__


def test_only_ok_and_held_passes_count_as_success() -> None:
    assert {o for o in PassOutcome if o.is_success} == {PassOutcome.OK, PassOutcome.HELD}
