"""`python -m bench.preview [N]`: how long `reconciler preview` of a scope change takes beside
`reconciler sync --dry-run` over the same linked, unchanged population of N (issue 17). Both
are fresh processes against the Hibob simulator served from its own process, as in the steady
scenario; medians of three, alternated."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.steady import _reconciler_command, measure, seed_served, served_hibob
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

CANDIDATE_SCOPE = (
    '\n[[scope.groups]]\nconditions = [{ field = "work.department", op = "in", '
    'values = ["Engineering"] }]\n'
)


def bench_preview(size: int, folder: Path, runs: int = 3) -> dict:
    learning = LearningSimulator(enforce_rate_limits=False)
    with served_hibob(size) as (hibob_url, _), serve(learning.handle) as learning_server:
        _, env, _ = seed_served(
            folder, learning, hibob_url, learning_server.url, f"preview-{size}.db"
        )
        candidate = folder / "candidate.toml"
        candidate.write_text(Path(env["RECONCILER_CONFIG"]).read_text() + CANDIDATE_SCOPE)
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
