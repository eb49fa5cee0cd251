"""NAS-Bench-201 (CIFAR-10) benchmark of the automl strategies.

Protocol: every evaluation returns the validation accuracy of *one* training seed from the offline
table (noisy, as in the NAS-Bench-201 paper); the search reports as best the model with the highest
observed validation accuracy (``--select max``, the default and ``SearchResult.best``: its best single
evaluation; ``--select mean``: a model evaluated more than once by the mean of its evaluations, tried in s22
and worse for every chain measured, docs/benchmarks.md); its quality is the table's mean validation accuracy
over seeds.

* regret = (best mean accuracy in the table) - (mean accuracy of the reported model), in % points;
* top1 = whether the reported model is in the top 1% of all 15,625 cells by mean accuracy.

Each repetition runs one search of max(budgets) evaluations per strategy; the result at a smaller
budget is the same search's state after that many evaluations (no strategy depends on the budget,
so this equals a separate run with that budget and seed). One JSON line per (strategy, budget):

    .venv/bin/python benchmarks/nas.py --reps 200 --budgets 50 100 200

``--paired-with LABEL`` adds, for every other strategy and budget, a line with the mean and standard
error of the per-seed difference of its regret to LABEL's (the same seeds: a paired comparison).
Timings (``seconds``: the strategy's searches so far) carry the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from openmindspore.automl import make_space, run_search
from openmindspore.automl.records import Trial

RESTART = 40  # trials in the first run of "markov-restart"

#: strategy label -> (strategy name, options). "markov" and "evolution" are the defaults;
#: "evolution-tuned" is the best of a population x tournament grid (10/20/50 x 3/5/10) on seeds
#: 1000-1099; "markov-context" conditions on the previous decision; "markov-naive" is the
#: moving-average learning rule (the ablation showing the rule matters); "tpe" is Optuna's default
#: TPESampler (``pip install 'openmindspore[optuna]'``). "markov-cem" is the chain before issue 25's
#: item 2 (plain elite estimate, no local moves: ``contrast`` and ``local`` 0). "markov-model" adds
#: the model trials (``model`` 1.0: every trial after 20 that is not a local move is proposed by the
#: GP surrogate, ``model_kappa`` 2; tuned on seeds 1000-1399, docs/benchmarks.md "The heavy tail").
#: "markov-restart" is "markov-model" with restarts (``restart``: the chain starts over after RESTART trials,
#: then after twice as many more, ...; the run length chosen on seeds 1200-1399, docs/search_runs/restart_s14_rule.txt).
#: "markov-surrogate" is "markov-restart" with runs of 50 whose local moves are picked by the surrogate too
#: (``local_pick`` "model": the unevaluated neighbour of the 3 best models with the largest upper bound; chosen on
#: seeds 1000-1399, docs/search_runs/local_pick_s20_rule.txt; missed on the fresh seeds 7000-7099, not recommended).
#: "markov-intensify" is "markov-restart" whose trials from 75 on are half re-evaluations of the 3 best models by mean
#: (``intensify`` 0.5, ``intensify_after`` 75: the middle of the flat region 70-80 on seeds 1000-1399,
#: docs/search_runs/intensify_s22_rule.txt): a lucky single score is checked, a good model gets more evaluations.
VARIANTS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "evolution-tuned": ("evolution", {"population": 10, "sample": 10}),
    "markov": ("markov", {}),
    "markov-context": ("markov", {"context": "prev"}),
    "markov-naive": ("markov", {"rule": "naive"}),
    "markov-cem": ("markov", {"contrast": 0.0, "local": 0.0}),
    "markov-model": ("markov", {"model": 1.0, "model_kappa": 2.0}),
    "markov-restart": ("markov", {"model": 1.0, "model_kappa": 2.0, "restart": RESTART}),
    "markov-surrogate": ("markov", {"model": 1.0, "model_kappa": 2.0, "restart": 50, "local_pick": "model"}),
    "markov-intensify": (
        "markov",
        {"model": 1.0, "model_kappa": 2.0, "restart": RESTART, "intensify": 0.5, "intensify_after": 75},
    ),
    "tpe": ("tpe", {}),
}


def _best_single(trials: list[Trial]) -> Trial:
    """The trial with the best single score (ties: the earliest): ``SearchResult.best``."""
    return max((t for t in trials if t.ok), key=lambda t: (t.score, -t.trial))


def _best_mean(trials: list[Trial]) -> Trial:
    """The first trial of the model with the best mean score over its evaluations (ties: the earliest seen)."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        if t.ok:
            groups.setdefault(json.dumps(t.spec, sort_keys=True), []).append(t)
    return max(groups.values(), key=lambda g: (float(np.mean([t.score for t in g])), -g[0].trial))[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--strategies", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--seed", type=int, default=0, help="repetition r uses search seed seed + r")
    ap.add_argument("--options", default="{}", help="JSON options for the strategies (tuning)")
    ap.add_argument("--select", choices=["max", "mean"], default="max", help="the reported best (see above)")
    ap.add_argument("--paired-with", metavar="LABEL", help="also the per-seed differences to this strategy")
    args = ap.parse_args(argv)
    if args.paired_with is not None and args.paired_with not in args.strategies:
        ap.error(f"--paired-with {args.paired_with!r} must be one of --strategies {args.strategies}")
    extra = json.loads(args.options)
    space = make_space("nb201", args.dataset)
    truth = space.all_true_scores()
    best, top1 = float(truth.max()), float(np.quantile(truth, 0.99))
    n_max = max(args.budgets)
    regrets: dict[str, np.ndarray] = {}
    for label in args.strategies:
        name, opts = VARIANTS[label]
        opts = {**opts, **extra.get(label, {})}
        t0 = time.perf_counter()
        regret = np.zeros((args.reps, len(args.budgets)))
        for r in range(args.reps):
            res = run_search(space, name, n_max, seed=args.seed + r, strategy_options=opts)
            for j, b in enumerate(args.budgets):
                chosen = _best_mean(res.trials[:b]) if args.select == "mean" else _best_single(res.trials[:b])
                regret[r, j] = best - space.true_score(chosen.spec)
        regrets[label] = regret
        for j, b in enumerate(args.budgets):
            reg = regret[:, j]
            hits = (best - reg) >= top1
            print(
                json.dumps(
                    {
                        "benchmark": "nas201",
                        "dataset": args.dataset,
                        "strategy": label,
                        "options": opts,
                        "budget": b,
                        "reps": args.reps,
                        "select": args.select,
                        "regret_mean": round(float(reg.mean()), 4),
                        "regret_sem": round(float(reg.std(ddof=1) / np.sqrt(len(reg))) if len(reg) > 1 else 0.0, 4),
                        "regret_median": round(float(np.median(reg)), 4),
                        "p_top1pct": round(float(hits.mean()), 4),
                        "seconds": round(time.perf_counter() - t0, 1),
                        "load_avg": round(os.getloadavg()[0], 2),
                    }
                ),
                flush=True,
            )
    for label in args.strategies if args.paired_with else []:
        if label == args.paired_with:
            continue
        for j, b in enumerate(args.budgets):
            diff = regrets[label][:, j] - regrets[args.paired_with][:, j]
            sem = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            row = {"benchmark": "nas201-paired", "dataset": args.dataset, "strategy": label}
            row.update({"versus": args.paired_with, "budget": b, "reps": args.reps, "seed": args.seed})
            row.update({"diff_mean": round(float(diff.mean()), 4), "diff_sem": round(sem, 4)})
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
