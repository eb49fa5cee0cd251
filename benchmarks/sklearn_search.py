"""scikit-learn pipeline search vs random search (equal budget) vs default estimators.

For each dataset (digits, wine, breast_cancer: ``sklearn-classifier``; diabetes: ``sklearn-regressor``)
and each strategy, ``--seeds`` searches of ``--budget`` evaluations choose the model with the best
validation score; we report that model's *test* score (accuracy or R^2), mean and std over seeds.
Default estimators (scikit-learn defaults on standardised features) are fitted once on the same
train split. One JSON line per (dataset, method):

    .venv/bin/python benchmarks/sklearn_search.py --budget 40 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from openmindspore.automl import make_space, run_search
from openmindspore.automl.spaces.sklearn import default_estimators, score_estimator

DATASETS = {
    "digits": "sklearn-classifier",
    "wine": "sklearn-classifier",
    "breast_cancer": "sklearn-classifier",
    "diabetes": "sklearn-regressor",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--strategies", nargs="+", default=["markov", "random", "evolution"])
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    for ds in args.datasets:
        space = make_space(DATASETS[ds], ds)
        metric = space.objective
        for strategy in args.strategies:
            t0 = time.perf_counter()
            vals, tests = [], []
            for seed in range(args.seeds):
                res = run_search(space, strategy, args.budget, seed=seed)
                b = res.best
                vals.append(b.score)
                tests.append(b.metrics["test"][metric])
            print(
                json.dumps(
                    {
                        "benchmark": "sklearn_search",
                        "dataset": ds,
                        "method": strategy,
                        "budget": args.budget,
                        "seeds": args.seeds,
                        "metric": metric,
                        "val_best_mean": round(float(np.mean(vals)), 4),
                        "test_mean": round(float(np.mean(tests)), 4),
                        "test_std": round(float(np.std(tests)), 4),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                ),
                flush=True,
            )
        with threadpool_limits(1):
            for name, est in default_estimators(space.task).items():
                m = score_estimator(est, space._ds)
                print(
                    json.dumps(
                        {
                            "benchmark": "sklearn_search",
                            "dataset": ds,
                            "method": f"default:{name}",
                            "metric": metric,
                            "val": round(m["val"][metric], 4),
                            "test": round(m["test"][metric], 4),
                        }
                    ),
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
