"""The benchmark's CI smoke version: tiny sizes, real processes, exact call counts."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main


@pytest.mark.bench_smoke
@pytest.mark.slow  # real processes (reconciler sync, a served Hibob): the slow tier
def test_an_unchanged_pass_makes_one_hibob_call_and_no_360learning_call(tmp_path) -> None:
    assert (
        main(
            [
                "--sizes",
                "150",
                "--runs",
                "1",
                "--writes",
                "0",
                "--hints",
                "0",
                "--adoption",
                "0",
                "--targeted",
                "",
                "--custom-fields",
                "0",
                "--no-profile",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )

    [row] = json.loads((tmp_path / "results.json").read_text())["steady"]
    assert row["hibob_calls"] == 1 and row["learning_calls"] == 0
    assert row["output"].startswith("incremental pass") and ": ok" in row["output"]
    assert row["linked"] > 100
    report = (tmp_path / "report.md").read_text()
    wanted = "| 1. calls on an unchanged pass, 150 | 1 Hibob, 0 360Learning | 1 and 0 | met |"
    assert wanted in report


@pytest.mark.bench_smoke
@pytest.mark.slow  # real processes (reconciler sync, a served Hibob): the slow tier
def test_adoption_reads_roles_for_the_admins_only_and_the_next_pass_is_quiet(tmp_path) -> None:
    argv = ["--only", "adoption", "--adoption", "150", "--no-profile", "--out", str(tmp_path)]
    assert main(argv) == 0

    [row] = json.loads((tmp_path / "results.json").read_text())["adoption"]
    assert row["accounts"] > 100
    assert row["user_roles_reads"] == row["admins"] == 10  # not one per adopted account
    assert row["adoption"]["calls"].get("writes", 0) == 0
    assert row["unchanged"]["learning_calls"] == 0
    report = (tmp_path / "report.md").read_text()
    assert "| 2. per-user roles reads adopting" in report and "| 10 | ≤ 200 | met |" in report


@pytest.mark.bench_smoke
def test_three_custom_fields_keep_the_unchanged_pass_quiet(tmp_path) -> None:
    argv = ["--only", "custom", "--custom-fields", "120", "--no-profile", "--out", str(tmp_path)]
    assert main(argv) == 0

    without, with_fields = json.loads((tmp_path / "results.json").read_text())["custom_fields"]
    assert (with_fields["incremental"]["hibob_calls"], with_fields["incremental"]["calls"]) == (
        1,
        0,
    )
    reads = with_fields["full"]["by_operation"]["GET /api/v2/users/{id}/custom-fields/values"]
    assert 0 < reads <= 120  # one per managed account, never more
    assert "GET /api/v2/users/{id}/custom-fields/values" not in without["full"]["by_operation"]
    report = (tmp_path / "report.md").read_text()
    assert "| unchanged pass with three custom fields at 120 (issue 16) | 1 Hibob, 0 360" in report


def test_the_report_shows_the_hint_and_eta_targets(tmp_path) -> None:
    from bench.report import _hint_targets

    rows = _hint_targets(
        [
            {
                "scenario": "eta",
                "created": 261,
                "eta_at_25_percent_seconds": 86.0,
                "actual_rest_after_25_percent_seconds": 86.6,
                "predicted_20000_first_sync": "2 h 27 min",
            },
            {
                "scenario": "hints",
                "long_pass_updates": 3000,
                "hints": 50,
                "writes_per_second_setting": 8.0,
                "p50_seconds": 0.52,
                "p99_seconds": 0.82,
                "landed_while_long_pass_busy": 50,
            },
        ]
    )

    assert rows[0].startswith("| 4./5. first-sync ETA (261 people") and "2 h 27 min" in rows[0]
    assert rows[0].endswith("within 20% | met |")
    assert rows[1].endswith("p50 ≤ 0.7 s, p99 ≤ 2 s | met |")
