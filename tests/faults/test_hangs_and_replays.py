"""Issue 15 scenarios with the real console script: upstreams that hang a pass (a paging loop,
an answer dripping one byte at a time) end on time with one line, and a captured signed
delivery replayed 10,000 times at a running service stores one hint row, not 10,000."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from faults.conftest import note, record_figure
from faults.test_crash_loop import Rig, free_port
from tests.test_robust_io import DripServer, json_head

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _run(rig: Rig, *argv: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [rig.script, *argv], env=rig.env, cwd=rig.cwd, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    return done, time.monotonic() - started


@pytest.fixture
def rig(tmp_path: Path):
    rig = Rig(tmp_path, seed=15, size=60)
    rig.learning.faults.latency_seconds = 0.0
    try:
        yield rig
    finally:
        rig.close()


def test_a_paging_loop_ends_the_full_pass_with_one_line(rig: Rig) -> None:
    assert _run(rig, "sync")[0].returncode == 0
    rig.learning.page_size = 10
    rig.learning.faults.loop_next_links(100_000, path_prefix="/api/v2/users")
    before = len(rig.learning.requests)

    done, took = _run(rig, "sync", "--full")

    calls = len(rig.learning.requests) - before
    record_figure("hang: paging loop, seconds to end", round(took, 1))
    record_figure("hang: paging loop, 360Learning calls", calls)
    assert done.returncode == 1, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert "pagingLoop" in line and "/api/v2/users" in line
    assert calls < 50 and took < 60


def test_an_answer_dripping_one_byte_every_half_second_ends_at_the_deadline(rig: Rig) -> None:
    body = json.dumps({"employees": [{"id": str(i)} for i in range(200)]}).encode()
    drip = DripServer(json_head(len(body)), body, drip_from=40, interval=0.5)
    rig.env["RECONCILER_HIBOB__BASE_URL"] = drip.url + "/v1"
    rig.env["RECONCILER_HIBOB__TIMEOUT_SECONDS"] = "2"
    try:
        done, took = _run(rig, "sync")
    finally:
        drip.close()

    record_figure("hang: 1 byte every 0.5 s, seconds to end", round(took, 1))
    record_figure("hang: 1 byte every 0.5 s, attempts", drip.connections)
    note(f"hang: the dripping answer would have taken {len(body) * 0.5 / 60:.0f} min to arrive")
    assert done.returncode == 1, done.stderr[-2000:]
    *retries, line = done.stderr.strip().splitlines()
    assert "hibob.timeout_seconds" in line
    assert retries and all("retrying in" in r for r in retries)  # never silent meanwhile
    assert took < drip.connections * 2 + 45  # attempts x deadline, plus backoff and start-up


def test_one_signed_delivery_replayed_10000_times_stores_one_hint(rig: Rig) -> None:
    assert _run(rig, "sync")[0].returncode == 0
    port = free_port()
    service = subprocess.Popen(
        [rig.script, "run"],
        env=dict(rig.env, RECONCILER_WEBHOOKS__LISTEN=f"127.0.0.1:{port}"),
        cwd=rig.cwd,
        stdout=rig.log,
        stderr=rig.log,
    )
    hibob_id = next(h for h, r in rig.hibob.records.items() if r.get("internal.status") == "Active")
    body, headers = rig.hibob.make_webhook(
        "employee.updated", hibob_id, rig.env["RECONCILER_WEBHOOKS__UPSERT_SECRET"]
    )
    url = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    try:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            started = time.monotonic()
            for _ in range(10_000):
                status = client.post(url + "/webhooks/hibob/upsert", content=body, headers=headers)
                statuses[status.status_code] = statuses.get(status.status_code, 0) + 1
            took = time.monotonic() - started
        time.sleep(2)
        with sqlite3.connect(rig.db, timeout=10) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM hints").fetchone()[0]
            deliveries = conn.execute("SELECT COALESCE(SUM(deliveries), 0) FROM hints").fetchone()
    finally:
        service.terminate()
        service.wait(timeout=60)

    record_figure("replay: deliveries sent", 10_000)
    record_figure("replay: hint rows stored", rows)
    note(f"replay: 10,000 deliveries in {took:.1f} s, answers {statuses}, rows {rows}")
    assert statuses.get(200, 0) + statuses.get(202, 0) == 10_000, statuses
    assert rows == 1  # one event: counted on its row, served once, never stored again
    assert deliveries[0] == 10_000
