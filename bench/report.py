"""Render bench/report.md from one run's results and the committed baseline (pure text)."""

from __future__ import annotations

from pathlib import Path

TARGET_RATIO = 1.5
PROFILE_LINES = 48


def render_report(results: dict, baseline: dict, out: Path, chart: str | None) -> str:
    env = results["environment"]
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` (`python -m bench`) on {env['started_at']}, commit "
        f"`{env['commit']}`, Python {env['python']}, {env['cpus']} CPUs, load average at start "
        f"{', '.join(f'{x:.1f}' for x in env['load_average_at_start'])}. The machine is shared: "
        "compare the product with the minimal client measured in the same run, not with "
        "figures from another run.",
        "",
        *_targets(results),
        *_steady(results["steady"]),
        *_before_after(results["steady"], baseline),
    ]
    if chart:
        lines += ["## Chart", "", f"![pass time and RSS against population size]({chart})", ""]
    lines += [*_writes(results["writes"]), *_profiles(results["profiles"], out)]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        lines += [analysis.read_text().rstrip(), ""]
    return "\n".join(lines) + "\n"


def _targets(results: dict) -> list[str]:
    rows = []
    by_size = {r["employees"]: r for r in results["steady"]}
    for size in (20_000, 100_000):
        if row := by_size.get(size):
            rows.append(
                f"| 1. steady pass wall time at {size:,} | {row['wall_ratio']} × "
                f"minimal client | ≤ {TARGET_RATIO} | {_met(row['wall_ratio'])} |"
            )
            rows.append(
                f"| 1. steady pass peak RSS at {size:,} | {row['rss_ratio']} × "
                f"minimal client | ≤ {TARGET_RATIO} | {_met(row['rss_ratio'])} |"
            )
    if row := by_size.get(100_000):
        rows.append(
            f"| 5. memory at 100,000 | {row['rss_ratio']} × minimal client | "
            f"≤ {TARGET_RATIO} | {_met(row['rss_ratio'])} |"
        )
    for row in results["steady"]:
        calls = row["hibob_calls"] == 1 and row["learning_calls"] == 0
        rows.append(
            f"| calls on an unchanged pass, {row['employees']:,} | {row['hibob_calls']} "
            f"Hibob, {row['learning_calls']} 360Learning | 1 and 0 | "
            f"{'met' if calls else 'NOT met'} |"
        )
    for row in results["writes"]:
        alone = row["other_writes_per_second"] == 0
        clean = row["failed_writes"] == 0 and row["duplicate_users"] == 0
        figure = (
            f"{row['ok_writes_per_second']} ok writes/s, {row['failed_writes']} failed, "
            f"{row['duplicate_users']} duplicate users"
        )
        if alone:
            met = row["ok_writes_per_second"] >= 9 and clean
            rows.append(
                f"| 3. first sync at the 10 writes/s limit | {figure} | ≥ 9/s, 0, 0 | "
                f"{'met' if met else 'NOT met'} |"
            )
        else:
            rows.append(
                f"| 3. sharing the budget with {row['other_writes_per_second']:g} "
                f"writes/s | {figure}, {row['our_429']} of our calls got 429 | "
                f"back off, 0 failed | {'met' if clean else 'NOT met'} |"
            )
    rows += _hint_targets(results.get("hints", []))
    if not rows:
        return []
    return [
        "## Targets (issue 10)",
        "",
        "| target | measured | wanted | |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def _hint_targets(rows: list[dict]) -> list[str]:
    """Targets 2 and 4 (bench/hints.py): hint latency while busy, the first-sync ETA."""
    lines = []
    for row in rows:
        if row["scenario"] == "hints":
            met = row["p50_seconds"] <= 0.7 and row["p99_seconds"] <= 2.0
            lines.append(
                f"| 2. hint latency while the start-up pass sends {row['long_pass_updates']:,} "
                f"updates ({row['hints']} hints, {row['writes_per_second_setting']:g} writes/s) "
                f"| p50 {row['p50_seconds']} s, p99 {row['p99_seconds']} s, "
                f"{row['landed_while_long_pass_busy']} landed while it was busy | p50 ≤ 0.7 s, "
                f"p99 ≤ 2 s | {'met' if met else 'NOT met'} |"
            )
        elif row["scenario"] == "eta":
            lines.append(
                f"| 4. first-sync ETA ({row['created']} people at 10 writes/s) | at 25 %: "
                f"{row['eta_at_25_percent_seconds']} s left predicted, "
                f"{row['actual_rest_after_25_percent_seconds']} s actual; 20,000 people: "
                f"{row['predicted_20000_first_sync']} predicted | done/total, rate, ETA | "
                "reported |"
            )
    return lines


def _met(ratio: float) -> str:
    return "met" if ratio <= TARGET_RATIO else "NOT met"


def _steady(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    table = [
        f"| {r['employees']:,} | {r['wall_seconds']:.2f} | {r['client_wall_seconds']:.2f} | "
        f"{r['wall_ratio']} | {r['peak_rss_mib']:.0f} | {r['client_peak_rss_mib']:.0f} | "
        f"{r['rss_ratio']} | {r['hibob_calls']} / {r['learning_calls']} | {r['runs']} |"
        for r in rows
    ]
    return [
        "## Steady state: an unchanged `reconciler sync`",
        "",
        "Command: `reconciler sync` (settings: `bench/steady.py`, department as organization, "
        "one group rule, managers on) against the Hibob simulator served from its own process, "
        "after seeding the store and the 360Learning simulator as a first sync would leave them. "
        "Yardstick: `python -m bench.minimal_client URL USER TOKEN FIELDS` (POST the same "
        "search, `json.loads` the answer). Each is started through `python -m bench.measure`: "
        "wall time from spawn to exit, peak RSS from the child's `ru_maxrss`. Medians of the "
        "runs; the two are run alternately.",
        "",
        "| employees | sync s | client s | wall × | sync MiB | client MiB | RSS × | "
        "Hibob / 360L calls | runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
    ]


def _before_after(rows: list[dict], baseline: dict) -> list[str]:
    before = {r["employees"]: r for r in baseline["rows"]}
    table = []
    for row in rows:
        old = before.get(row["employees"])
        if old is None:
            continue
        table.append(
            f"| {row['employees']:,} | {old['wall_seconds']:.2f} s ({old['wall_ratio']} ×) | "
            f"{row['wall_seconds']:.2f} s ({row['wall_ratio']} ×) | "
            f"{old['peak_rss_mib']:.0f} MiB ({old['rss_ratio']} ×) | "
            f"{row['peak_rss_mib']:.0f} MiB ({row['rss_ratio']} ×) |"
        )
    if not table:
        return []
    return [
        "## Before and after",
        "",
        f"Before: commit `{baseline['commit']}`, measured with this same harness "
        f"(`bench/baseline.json`: {baseline['note']}). Absolute times move with the load of "
        "the shared machine; the ratios to the minimal client of the same run are what "
        "compares.",
        "",
        "| employees | wall before | wall after | RSS before | RSS after |",
        "| --- | --- | --- | --- | --- |",
        *table,
        "",
    ]


def _writes(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    table = [
        f"| {r['description']} (`{r['command']}`) | {r['created']} | {r['writes_ok']} | "
        f"{r['wall_seconds']} | "
        f"{r['ok_writes_per_second']} | {r['our_429']} | {r['failed_writes']} | "
        f"{r['duplicate_users']} | {r['other_writes_ok']} ok, {r['other_429']} × 429 |"
        for r in rows
    ]
    return [
        "## Writes at the vendor's limit",
        "",
        "A first sync against the 360Learning simulator enforcing 10 writes/s per company "
        "(any one-second window), the write pacer's ceiling at 10/s "
        "(`learning.max_writes_per_second`). Writes/s counts successful writes between the "
        "first and the last; 429s are retried, so they cost time, not writes.",
        "",
        "| scenario | created | ok writes | s | ok writes/s | our 429s | failed writes | "
        "duplicate users | other integration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
    ]


def _profiles(profiles: dict, out: Path) -> list[str]:
    lines = []
    for size, name in profiles.items():
        path = out / name
        if not path.exists():
            continue
        text = path.read_text().strip().splitlines()
        lines += [
            f"### Profile at {int(size):,} employees (`{name}`)",
            "",
            "`python -m pyinstrument --interval=0.001 -m reconciler sync`: wall-clock "
            "samples, so waiting for the simulator to render the company shows as "
            "`socket.recv`; the profiler's per-call hook inflates call-heavy code.",
            "",
            "```",
            *[line[:120] for line in text[:PROFILE_LINES]],
            "```",
            "",
        ]
    return ["## Profiles", "", *lines] if lines else []
