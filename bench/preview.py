"""`python -m bench.preview [N]`: how long `reconciler preview` of a scope change takes beside
`reconciler sync --dry-run` over the same linked, unchanged population of N (issue 17). Both
are fresh processes against the Hibob simulator served from its own process, as in the steady
scenario; medians of three, alternated."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import build_pass_context, seed_linked_population
from bench.steady import (
    HIBOB_TOKEN,
    HIBOB_USER,
    _reconciler_command,
    measure,
    served_hibob,
    settings_file,
)
from reconciler.config import load_settings
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

CANDIDATE_SCOPE = (
    '\n[[scope.groups]]\nconditions = [{ field = "work.department", op = "in", '
    'values = ["Engineering"] }]\n'
)


def bench_preview(size: int, folder: Path, runs: int = 3) -> dict:
    learning = LearningSimulator(enforce_rate_limits=False)
    with served_hibob(size) as (hibob_url, _), serve(learning.handle) as learning_server:
        config = settings_file(folder, learning)
        candidate = folder / "candidate.toml"
        candidate.write_text(config.read_text() + CANDIDATE_SCOPE)
        environ = {
            "RECONCILER_CONFIG": str(config),
            "RECONCILER_HIBOB__BASE_URL": hibob_url,
            "RECONCILER_HIBOB__SERVICE_USER_ID": HIBOB_USER,
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": HIBOB_TOKEN,
            "RECONCILER_LEARNING__BASE_URL": learning_server.url,
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_STORE__PATH": str(folder / f"preview-{size}.db"),
        }
        services = build_pass_context(load_settings(environ=environ))
        seed_linked_population(services, learning)
        services.store.close()
        services.hibob.close()
        services.learning.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        env.update(environ)
        script = _reconciler_command()
        measure([script, "sync"], env, folder)  # the pass after seeding stores the keys
        writes_before = sum(1 for m, _, _ in learning.requests if m != "GET")
        dry, preview = [], []
        for _ in range(runs):
            dry.append(measure([script, "sync", "--dry-run"], env, folder))
            preview.append(measure([script, "preview", "--config", str(candidate)], env, folder))
        writes = sum(1 for m, _, _ in learning.requests if m != "GET") - writes_before
    return {
        "employees": size,
        "dry_run_seconds": statistics.median(m.wall_seconds for m in dry),
        "preview_seconds": statistics.median(m.wall_seconds for m in preview),
        "preview_exit": preview[-1].exit_code,
        "preview_lines": len(preview[-1].stdout.splitlines()),
        "writes_during": writes,
    }


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory(prefix="reconciler-preview-") as folder:
        print(json.dumps(bench_preview(size, Path(folder))))
