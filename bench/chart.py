"""Chart of the steady scenario: pass wall time and peak RSS against population size, for the
product and the minimal client. Run by `python -m bench` with matplotlib on PYTHONPATH.
Usage: python -m bench.chart RESULTS_JSON OUTPUT_PNG
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    results = json.loads(open(sys.argv[1]).read())
    rows = sorted(results["steady"], key=lambda r: r["employees"])
    sizes = [r["employees"] for r in rows]
    figure, (wall, rss) = plt.subplots(1, 2, figsize=(11, 4.2))
    before = sorted(results.get("before_steady", []), key=lambda r: r["employees"])
    for axis, key, label, factor in (
        (wall, "wall_seconds", "wall time (s)", 1.2),
        (rss, "peak_rss_mib", "peak RSS (MiB)", 1.0),
    ):
        axis.plot(sizes, [r[key] for r in rows], "o-", label="reconciler sync (after)")
        if before:
            axis.plot(
                [r["employees"] for r in before],
                [r[key] for r in before],
                "^-.",
                label="reconciler sync (before)",
            )
        axis.plot(sizes, [r["client_" + key] for r in rows], "s--", label="minimal client")
        axis.plot(
            sizes,
            [factor * r["client_" + key] for r in rows],
            ":",
            color="grey",
            label=f"{factor:g} × minimal client (target)",
        )
        axis.set_xscale("log")
        axis.set_xlabel("employees (log scale)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    wall.set_title("Unchanged pass: wall time, process start-up included")
    rss.set_title("Unchanged pass: peak resident memory")
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
