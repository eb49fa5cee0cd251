"""Active learning on digits + logistic regression: every strategy side by side, stopping, abstention.

Protocol (issue 16): pool = the digits train split (1,439 images), 20 random initial labels, batch 10,
budget 400, test accuracy on the test split (179 images); ``--seeds`` repetitions per configuration
(default 9000-9009, seeds that were never used while developing: development used 0-9). Rows:

- one per strategy (BALD draws its posterior samples from a bootstrap ensemble of 5), margin with
  TypiClust's typical first labels (``+typical``, ``--init typical``), then the semi-supervised variants
  (label-spreading pseudo-labels, ``+semi``) as separate rows, margin+semi with label spreading's alpha
  0.8 instead of the default 0.2 (``+alpha0.8``, ``--spread-alpha 0.8``, chosen on development seeds 0-9),
  then margin and margin+semi with half of each batch from the audit stream (``+audit0.5``, ``--audit 0.5``);
- ``curve``: labels to reach 95% / 99% of full-pool accuracy (seed-mean curve), accuracy at 150 and
  400 labels, seconds per round;
- ``stopping``: for every rule, where it fires per seed vs the seed's own labels-to-99%;
- ``abstention``: at 400 labels, target 97% selective accuracy (delta 0.1): certified share, test
  coverage and selective accuracy, the uncorrected threshold's violation rate, ECE before/after.

``--suite mnist-ratio --margin-from DIR...``: per seed of those margin runs, the labels random needs to reach
95% of full-data accuracy at the margin run's batch, fitted only near its crossing (random's labelled sets
need no model), and the ratio random / margin.

``--suite mnist``: **MNIST-5k + the default CNN with dropout 0.5** (a MindSpore learner, each fit in a
fresh process): pool = the mnist5k train split (4,000 images), 20 random initial labels, batch 80,
budget 500 (fits at 20, 100, ..., 500 labels: a coarse schedule, affordable on 2 CPU cores),
20 epochs (at least 100 Adam steps, ``--min-steps S`` for another floor: phase 8 of docs/benchmarks.md ran 300,
``oms active``'s default) per fit, no cross-fitting (``folds 0``: this table is about labels,
not calibration), seed 9000 (``--seeds N`` for more); rows random and margin (``--strategies ... bald`` adds BALD, 10
MC-dropout passes); ``mnist`` table: labels to 95% of full-data accuracy (the same CNN, same seed,
trained on the whole pool), the ratio random / strategy (a lower bound when random does not get there
within the budget), seconds per round. ``--batch B`` and ``--budget N`` change the schedule (run directory
``mnist-<strategy>-b<B>`` when B is not 80). The full-data fit (2,500 steps, the costliest) is a function of
(seed, pool, labels) only, so it is made once per seed and shared by every strategy's run
(``--full-from DIR`` also takes it from an earlier run with the same network and training options).

Each configuration is an ``oms active`` run directory under ``--work`` (re-running resumes), one JSON
line per row; ``--markdown`` prints the tables for docs/benchmarks.md::

    nice -n 19 .venv/bin/python benchmarks/active.py --workers 2 --markdown
    nice -n 19 .venv/bin/python benchmarks/active.py --suite mnist --workers 2 --markdown
    nice -n 19 .venv/bin/python benchmarks/active.py --suite mnist --strategies margin --batch 20 --budget 400
    nice -n 19 .venv/bin/python benchmarks/active.py --suite mnist-ratio --margin-from DIR/mnist-margin-b20
    nice -n 10 .venv/bin/python benchmarks/active.py --suite mnist --strategies margin-kmeans --batch 20 \
        --budget 300 --min-steps 300 --seed S --seeds 1 --work DIR     # phase 8 (random: its fill_random.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _active_mnist import MNIST, MNIST_AT, _at, mnist, mnist_ratio

from openmindspore.active import ActiveConfig, run_active
from openmindspore.active.strategies import STRATEGIES

BASE = {"dataset": "digits", "model": "logreg", "initial": 20, "batch": 10, "budget": 400, "target_accuracy": 0.97}
ALPHA = 0.8  # label spreading's alpha of the extra margin+semi row (chosen on development seeds 0-9)


# the options a full-data fit depends on (with the seed): equal ones give the same network
def configs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    out = []
    for s in args.strategies:
        out.append((s, {"strategy": s, **({"ensemble": 5} if s == "bald" else {})}))
    typical = {"init": "typical"}
    out.append(("margin+typical", {"strategy": "margin", **typical}))
    for s in args.semi:
        out.append((f"{s}+semi", {"strategy": s, "semi_supervised": True}))
    out.append(("margin+semi+typical", {"strategy": "margin", "semi_supervised": True, **typical}))
    for alpha in args.spread_alpha:
        out.append(
            (f"margin+semi+alpha{alpha}", {"strategy": "margin", "semi_supervised": True, "spread_alpha": alpha})
        )
    if args.audit:
        out.append((f"margin+audit{args.audit}", {"strategy": "margin", "audit": args.audit}))
        out.append(
            (f"margin+semi+audit{args.audit}", {"strategy": "margin", "semi_supervised": True, "audit": args.audit})
        )
    return [(n, c) for n, c in out if not args.only or n in args.only]


def rows_for(name: str, s: dict, seconds: float) -> list[dict]:
    full = s["full_pool_accuracy"]
    l99 = s["labels_to_99pct_full"]
    curve = {
        "benchmark": "active",
        "table": "curve",
        "config": name,
        "seeds": s["seeds"],
        "full_pool_accuracy": round(full, 4),
        "labels_to_95pct_full": s["labels_to_95pct_full"],
        "labels_to_99pct_full": l99,
        "goal_99pct_within_150": l99 is not None and l99 <= 150,
        "accuracy_at_150": _at(s, 150),
        "accuracy_at_400": _at(s, 400),
        "seconds_per_round": round(s["seconds_per_round"], 3),
        "wall_s": round(seconds, 1),
    }
    out = [curve]
    st = s["stopping"]
    for rule in ("auto", "stabilizing", "max-uncertainty", "budget"):
        r = st[rule]
        labels = r["labels"]
        out.append(
            {
                "benchmark": "active",
                "table": "stopping",
                "config": name,
                "rule": rule,
                "fired_in": f"{sum(r['fired'])}/{len(r['fired'])}",
                "median_labels_at_stop": float(np.median(labels)) if labels else None,
                "median_rel_error_vs_99pct": r["median_rel_error_vs_99pct"],
                "share_accuracy_ge_98pct_full": r["share_accuracy_ge_98pct_full"],
                "labels_to_99pct_per_seed": st["labels_to_99pct_full_per_seed"],
                "labels_at_stop_per_seed": r["labels"],
            }
        )
    a = s["abstention"]
    out.append(
        {
            "benchmark": "active",
            "table": "abstention",
            "config": name,
            "target": a["target"],
            "certified": f"{sum(bool(c) for c in a['certified'])}/{len(a['certified'])}",
            "mean_coverage": round(a["mean_coverage"], 3),
            "share_seeds_meeting_target": a["share_seeds_meeting_target"],
            "share_meeting_target_at_80pct_coverage": float(
                np.mean(
                    [
                        c >= 0.8 and x is not None and x >= a["target"]
                        for c, x in zip(a["coverage"], a["selective_accuracy"])
                    ]
                )
            ),
            "naive_violation_rate": a["naive_violation_rate"],
            "naive_mean_coverage": round(float(np.mean(a["naive_coverage"])), 3),
            "ece_before": round(a["ece_before"], 4),
            "ece_after": round(a["ece_after"], 4),
            "median_more_labels_needed": (
                float(np.median([m for m in a["more_labels_needed"] if m])) if any(a["more_labels_needed"]) else None
            ),
        }
    )
    return out


def _f(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


# (header, row key, format) per column of each table in docs/benchmarks.md
COLUMNS = {
    "curve": [
        ("configuration", "config", "s"),
        ("full-pool acc.", "full_pool_accuracy", ".3f"),
        ("labels to 95%", "labels_to_95pct_full", "d"),
        ("labels to 99%", "labels_to_99pct_full", "d"),
        ("acc. @150", "accuracy_at_150", ".3f"),
        ("acc. @400", "accuracy_at_400", ".3f"),
        ("s / round", "seconds_per_round", ".2f"),
    ],
    "stopping": [
        ("configuration", "config", "s"),
        ("rule", "rule", "s"),
        ("fired before the budget", "fired_in", "s"),
        ("median labels at stop", "median_labels_at_stop", ".0f"),
        ("median rel. error vs labels-to-99%", "median_rel_error_vs_99pct", ".2f"),
        ("seeds with acc. >= 98% of full", "share_accuracy_ge_98pct_full", ".0%"),
    ],
    "abstention": [
        ("configuration", "config", "s"),
        ("certified", "certified", "s"),
        ("mean test coverage", "mean_coverage", ".3f"),
        ("seeds >= 97%", "share_seeds_meeting_target", ".0%"),
        ("seeds >= 97% at >= 80% coverage", "share_meeting_target_at_80pct_coverage", ".0%"),
        ("uncorrected: violation rate", "naive_violation_rate", ".0%"),
        ("uncorrected: coverage", "naive_mean_coverage", ".3f"),
        ("ECE before", "ece_before", ".3f"),
        ("ECE after", "ece_after", ".3f"),
        ("more labels needed (median)", "median_more_labels_needed", ".0f"),
    ],
    "mnist": [
        ("strategy", "config", "s"),
        ("full-data acc.", "full_pool_accuracy", ".3f"),
        ("labels to 95%", "labels_to_95pct_full", "d"),
        ("random / this", "random_over_this_text", "s"),
        *((f"acc. @{n}", f"accuracy_at_{n}", ".3f") for n in MNIST_AT),
        ("s / round", "seconds_per_round", ".0f"),
    ],
    "mnist_seed": [
        ("seed", "seed", ""),
        ("full-data acc.", "full_data_accuracy", ".3f"),
        ("95% of it", "bar_95pct", ".3f"),
        ("margin: labels to 95%", "margin_labels_to_95", "d"),
        ("random: labels to 95%", "random_labels_to_95", "d"),
        ("random / margin", "ratio", ".2f"),
    ],
}


def markdown(rows: list[dict]) -> str:
    out = []
    for table, cols in COLUMNS.items():
        if not any(r["table"] == table for r in rows):
            continue
        out.append("| " + " | ".join(h for h, _, _ in cols) + " |")
        out.append("|" + "|".join("---" if f == "s" else "---:" for _, _, f in cols) + "|")
        for r in (r for r in rows if r["table"] == table):
            out.append("| " + " | ".join(_f(r.get(k), f) for _, k, f in cols) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["digits", "mnist", "mnist-ratio"], default="digits")
    ap.add_argument("--seed", type=int, default=9000, help="first seed (default 9000)")
    ap.add_argument("--seeds", type=int, help="seeds per configuration (default 10; mnist: 1)")
    ap.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), help="default: all (mnist: random margin)")
    ap.add_argument("--semi", nargs="*", default=["margin", "margin-kmeans", "random"], choices=list(STRATEGIES))
    ap.add_argument("--spread-alpha", nargs="*", type=float, default=[ALPHA], help="margin+semi rows with this alpha")
    ap.add_argument("--only", nargs="+", help="digits: run only these rows (by name; the rest is resumed later)")
    ap.add_argument("--audit", type=float, default=0.5, help="margin with this audit share (0: no such row)")
    ap.add_argument("--batch", type=int, help="labels per round (default 10; mnist: 80; mnist-ratio: the margin runs')")
    ap.add_argument("--budget", type=int, help="default 400 (mnist: 500)")
    ap.add_argument(
        "--min-steps", type=int, default=MNIST["min_steps"], help="mnist: at least this many Adam steps per fit"
    )
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--work", default="/tmp/oms-bench-active", help="run directories (re-running resumes)")
    ap.add_argument("--full-from", nargs="+", help="mnist: take full-data accuracies from these earlier runs")
    ap.add_argument("--margin-from", nargs="+", help="mnist-ratio: margin runs (mnist suite), one row per seed")
    ap.add_argument("--random-from", nargs="*", default=[], help="mnist-ratio: earlier random runs (fits reused)")
    ap.add_argument("--dense", action="store_true", help="mnist-ratio: also fit random at every count in between")
    ap.add_argument("--max-labels", type=int, default=980, help="mnist-ratio: random's largest labelled set")
    ap.add_argument("--markdown", action="store_true", help="print the tables for docs/benchmarks.md at the end")
    args = ap.parse_args(argv)
    for flag, v in (("--batch", args.batch), ("--budget", args.budget)):
        if v is not None and v < 1:
            ap.exit(2, f"{ap.prog}: error: {flag} {v}: expected a positive number of labels; pass e.g. {flag} 20\n")
    print(json.dumps({"benchmark": "active", "load_average_start": os.getloadavg()}), flush=True)
    rows = {"mnist": mnist, "mnist-ratio": mnist_ratio, "digits": digits}[args.suite](args)
    print(json.dumps({"benchmark": "active", "load_average_end": os.getloadavg()}), flush=True)
    if args.markdown:
        print(markdown(rows))
    return 0


def digits(args: argparse.Namespace) -> list[dict]:
    args.strategies = args.strategies or list(STRATEGIES)
    args.budget, args.seeds = args.budget or BASE["budget"], args.seeds or 10
    rows: list[dict] = []
    for name, over in configs(args):
        run = {"budget": args.budget, "batch": args.batch or BASE["batch"], "seed": args.seed, "seeds": args.seeds}
        cfg = ActiveConfig(**{**BASE, **run, **over})
        t0 = time.perf_counter()
        s = run_active(cfg, Path(args.work) / name, workers=args.workers)
        for r in rows_for(name, s, time.perf_counter() - t0):
            rows.append(r)
            print(json.dumps(r, sort_keys=True), flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
