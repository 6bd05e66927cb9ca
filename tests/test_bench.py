"""The benchmark's CI smoke version: tiny sizes, real processes, exact call counts."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main


@pytest.mark.bench_smoke
def test_an_unchanged_pass_makes_one_hibob_call_and_no_360learning_call(tmp_path) -> None:
    assert main(["--sizes", "150", "--runs", "1", "--writes", "0", "--no-profile",
                 "--out", str(tmp_path)]) == 0

    [row] = json.loads((tmp_path / "results.json").read_text())["steady"]
    assert row["hibob_calls"] == 1 and row["learning_calls"] == 0
    assert row["output"].startswith("incremental pass") and ": ok" in row["output"]
    assert row["linked"] > 100
    report = (tmp_path / "report.md").read_text()
    assert "| calls on an unchanged pass, 150 | 1 Hibob, 0 360Learning | 1 and 0 | met |" in report
