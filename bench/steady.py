"""Steady scenario: `reconciler sync` over an unchanged population, as a fresh process.

Hibob is served from its own process; 360Learning is served from this one, seeded as after a
first sync. Each run starts `reconciler sync` and the minimal client (bench/minimal_client.py)
alternately and measures wall time (spawn to exit) and peak RSS (the child's ru_maxrss).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import NOW, SEED, TODAY, build_pass_context, seed_linked_population
from reconciler.config import Settings, load_settings
from reconciler.core.desired import required_fields
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

HIBOB_USER, HIBOB_TOKEN = "sandbox-user", "sandbox-token"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    wall_seconds: float
    peak_rss_mib: float
    exit_code: int
    stdout: str


def measure(argv: list[str], env: dict[str, str], folder: Path) -> Measured:
    """Run `argv` to completion through bench.measure: wall time from spawn to exit, peak RSS."""
    out_path = folder / "child.out"
    probe = subprocess.run(
        [sys.executable, "-m", "bench.measure", str(out_path), *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(probe.stdout)
    return Measured(
        round(figures["wall_seconds"], 3),
        round(figures["peak_rss_kib"] / 1024, 1),
        figures["exit_code"],
        out_path.read_text(errors="replace"),
    )


@contextmanager
def served_hibob(size: int) -> Iterator[tuple[str, subprocess.Popen]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.hibob_server", str(size), str(SEED), TODAY.isoformat()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield server.stdout.readline().strip(), server
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        server.stdout.close()


def hibob_requests(server: subprocess.Popen) -> int:
    server.stdin.write("count\n")
    server.stdin.flush()
    return int(server.stdout.readline())


def settings_file(folder: Path, learning: LearningSimulator) -> Path:
    """A realistic configuration: department as organization, one group rule."""
    path = folder / "settings.toml"
    path.write_text(
        '[mapping]\norganization = "work.department"\nmanager = true\n\n'
        '[[mapping.groups]]\nfield = "work.department"\nlabel = "Engineering"\n'
        f'group_id = "{learning.engineering_group_id}"\nrole = "learner"\n'
    )
    return path


def seed_served(
    folder: Path, learning: LearningSimulator, hibob_url: str, learning_url: str, db_name: str
) -> tuple[Settings, dict[str, str], int]:
    """Settings for the served simulators and a store seeded as a first sync leaves it:
    (the settings, the environment for measured processes, how many employees are linked)."""
    environ = {
        "RECONCILER_CONFIG": str(settings_file(folder, learning)),
        "RECONCILER_HIBOB__BASE_URL": hibob_url,
        "RECONCILER_HIBOB__SERVICE_USER_ID": HIBOB_USER,
        "RECONCILER_HIBOB__SERVICE_USER_TOKEN": HIBOB_TOKEN,
        "RECONCILER_LEARNING__BASE_URL": learning_url,
        "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
        "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
        "RECONCILER_STORE__PATH": str(folder / db_name),
    }
    settings = load_settings(environ=environ)
    services = build_pass_context(settings)
    linked = seed_linked_population(services, learning)
    services.store.close()
    services.hibob.close()
    services.learning.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(environ)
    return settings, env, linked


def bench_steady(size: int, folder: Path, *, runs: int = 3, profile_to: Path | None = None) -> dict:
    learning = LearningSimulator(enforce_rate_limits=False, now=lambda: NOW)
    with served_hibob(size) as (hibob_url, server), serve(learning.handle) as learning_server:
        settings, env, linked = seed_served(
            folder, learning, hibob_url, learning_server.url, f"steady-{size}.db"
        )
        fields = ",".join(dict.fromkeys(["root.id", *required_fields(settings)]))
        product_argv = [_reconciler_command(), "sync"]
        client_argv = [
            sys.executable,
            "-m",
            "bench.minimal_client",
            hibob_url,
            HIBOB_USER,
            HIBOB_TOKEN,
            fields,
        ]
        # Steady state is the pass after a pass: the first one after seeding stores what the
        # next ones compare with (the source keys); it is not measured.
        measure(product_argv, env, folder)
        product, client, hibob_calls, learning_calls = [], [], [], []
        for _ in range(runs):
            client.append(measure(client_argv, env, folder))
            before = hibob_requests(server), len(learning.requests)
            product.append(measure(product_argv, env, folder))
            hibob_calls.append(hibob_requests(server) - before[0])
            learning_calls.append(len(learning.requests) - before[1])
        if profile_to is not None:
            profile(["-m", "reconciler", "sync"], env, profile_to)
    failed = [m for m in product + client if m.exit_code != 0]
    if failed:
        raise RuntimeError(f"a measured process failed: {failed[0].stdout[-500:]}")
    wall, rss = _median(product, "wall_seconds"), _median(product, "peak_rss_mib")
    base_wall, base_rss = _median(client, "wall_seconds"), _median(client, "peak_rss_mib")
    return {
        "scenario": "steady",
        "employees": size,
        "linked": linked,
        "runs": runs,
        "hibob_calls": max(hibob_calls),
        "learning_calls": max(learning_calls),
        "output": _summary(product[-1].stdout),
        "wall_seconds": wall,
        "peak_rss_mib": rss,
        "client_wall_seconds": base_wall,
        "client_peak_rss_mib": base_rss,
        "wall_ratio": round(wall / base_wall, 2),
        "rss_ratio": round(rss / base_rss, 2),
        "command": " ".join(["reconciler", "sync"]),
    }


def profile(module_argv: list[str], env: dict[str, str], output: Path) -> None:
    """A pyinstrument call-tree of one more run (text, wall-clock sampling)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pyinstrument",
            "--renderer",
            "text",
            "--interval=0.001",
            "--outfile",
            str(output),
            *module_argv,
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _summary(output: str) -> str:
    """The pass's one-line result as `reconciler sync` prints it."""
    lines = output.strip().splitlines()
    return next((line for line in lines if line.startswith("incremental pass")), lines[-1])


def _median(rows: list[Measured], name: str) -> float:
    return round(statistics.median(getattr(m, name) for m in rows), 3)


def _reconciler_command() -> str:
    script = Path(sys.executable).with_name("reconciler")
    return str(script) if script.exists() else shutil.which("reconciler") or "reconciler"
