"""`make bench`: measure product §4 on the bundled simulators and write bench/report.md.

Scenarios:
- steady: `reconciler sync` over an unchanged population, as a fresh process, beside a minimal
  client (a fresh Python process that POSTs the same search and json.loads it): wall time and
  peak RSS, process start-up included, at growing sizes, plus a pyinstrument profile;
- writes: a first sync against a 360Learning simulator enforcing 10 writes/s per company,
  alone and with another integration spending 4 writes/s of the same budget;
- hints (bench/hints.py): the ETA of a first sync against its actual end, extrapolated to
  20,000 and 100,000 people, and webhook hints' latency while `reconciler run` is busy with
  3,000 updates;
- adoption (bench/adoption.py): the migration case, every employee already has an account:
  the adopting `reconciler sync`, then a full pass over the linked platform, per-user roles
  reads counted;
- targeted (bench/targeted.py): one employee's pass against the store's size;
- custom (bench/custom_fields.py): the unchanged pass and the full resync with three custom
  fields mapped, beside the same passes without.
Usage: python -m bench [--sizes 1000,5000,20000,100000] [--runs 3] [--writes 150] [--hints 50]
                       [--adoption 20000] [--targeted 1000,100000] [--custom-fields 20000]
                       [--only steady|writes|hints|adoption|targeted|custom] [--out bench]
With --only, the other scenarios' results are kept from the folder's results.json, so the
report stays whole.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import hints as hint_bench
from bench.adoption import bench_adoption
from bench.custom_fields import measure as bench_custom_fields
from bench.report import render_report
from bench.steady import ROOT, bench_steady
from bench.targeted import bench_targeted
from bench.writes import bench_first_sync

PROFILED_SIZES = (20_000, 100_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", default="1000,5000,20000,100000")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (the median counts)")
    parser.add_argument(
        "--writes",
        type=int,
        default=150,
        help="employees in the first-sync scenarios (0: skip them)",
    )
    parser.add_argument(
        "--hints",
        type=int,
        default=50,
        help="webhooks in the hints-while-busy scenario (0: skip it and the ETA)",
    )
    parser.add_argument(
        "--adoption", type=int, default=20_000, help="employees in the adoption scenario (0: skip)"
    )
    parser.add_argument(
        "--targeted",
        default="1000,100000",
        help="store sizes for the targeted-pass scenario (empty: skip it)",
    )
    parser.add_argument(
        "--custom-fields",
        type=int,
        default=20_000,
        help="employees in the custom-fields scenario (0: skip it)",
    )
    parser.add_argument(
        "--only", choices=("steady", "writes", "hints", "adoption", "targeted", "custom")
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "bench"),
        help="folder for report.md, results.json and chart.png",
    )
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "environment": _environment(),
        "steady": [],
        "writes": [],
        "hints": [],
        "adoption": [],
        "targeted": [],
        "custom_fields": [],
        "profiles": {},
    }
    saved = out / "results.json"
    if args.only and saved.exists():  # one scenario re-run: keep the others' results
        kept = json.loads(saved.read_text())
        results.update({k: v for k, v in kept.items() if k not in ("environment", args.only)})
        notes = [
            kept["environment"].get("note") or f"earlier run at {kept['environment']['commit']}"
        ]
        notes.append(f"{args.only} re-run alone ({' '.join(argv or sys.argv[1:])}) at this commit")
        results["environment"]["note"] = "; ".join(notes)
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as folder:
        if args.only in (None, "steady"):
            for size in sorted(int(s) for s in args.sizes.split(",") if s):
                profile = (
                    out / f"profile-{size}.txt"
                    if size in PROFILED_SIZES and not args.no_profile
                    else None
                )
                row = bench_steady(size, Path(folder), runs=args.runs, profile_to=profile)
                results["steady"].append(row)
                if profile is not None:
                    results["profiles"][str(size)] = profile.name
                print(json.dumps(row), flush=True)
        if args.only in (None, "writes") and args.writes:
            for other in (0.0, 4.0):
                row = bench_first_sync(args.writes, Path(folder), other_writes_per_second=other)
                results["writes"].append(row)
                print(json.dumps(row), flush=True)
        if args.only in (None, "hints") and args.hints:
            for row in (
                hint_bench.bench_eta(300, Path(folder)),
                hint_bench.bench_hints(args.hints, 3000, Path(folder)),
            ):
                results["hints"].append(row)
                print(json.dumps(row), flush=True)
        if args.only in (None, "adoption") and args.adoption:
            row = bench_adoption(args.adoption, Path(folder))
            results["adoption"].append(row)
            print(json.dumps(row), flush=True)
        if args.only in (None, "custom") and args.custom_fields:
            results["custom_fields"] = [
                bench_custom_fields(args.custom_fields, custom_fields=custom)
                for custom in (False, True)
            ]
            print(json.dumps(results["custom_fields"]), flush=True)
        if args.only in (None, "targeted") and args.targeted:
            for size in sorted(int(s) for s in args.targeted.split(",") if s):
                row = bench_targeted(size, Path(folder))
                results["targeted"].append(row)
                print(json.dumps(row), flush=True)
    baseline = json.loads((ROOT / "bench" / "baseline.json").read_text())
    results["before_steady"] = baseline.get("rows", [])  # the chart's "before" line
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    chart = _draw_chart(out / "results.json", out / "chart.png") if results["steady"] else None
    (out / "report.md").write_text(render_report(results, baseline, out, chart))
    print(f"wrote {out / 'report.md'}", flush=True)
    return 0


def _draw_chart(results: Path, chart: Path) -> str | None:
    """Draw with matplotlib from .venv/plot (kept off the product's path: see the Makefile)."""
    plot_path = ROOT / ".venv" / "plot"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plot_path), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.chart", str(results), str(chart)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"no chart: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return chart.name


def _environment() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit or "unknown",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


if __name__ == "__main__":
    sys.exit(main())
