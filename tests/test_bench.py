"""The benchmark keeps working (tiny sizes; `make bench` runs the real ones)."""

from __future__ import annotations

import json

from bench.__main__ import main


def test_benchmark_steady_state_makes_one_hibob_call_and_no_360learning_call(tmp_path) -> None:
    report = tmp_path / "bench.json"
    assert main(["--sizes", "120", "--bulk", "0", "--hints", "0", "--json", str(report)]) == 0
    [row] = json.loads(report.read_text())
    assert row["hibob_calls"] == 1 and row["learning_calls"] == 0
    assert row["planned_actions"] == 0 and row["linked"] > 90
