"""CNN search on MNIST-5k vs the hand-designed DEFAULT_CNN at the same training budget.

Runs (or resumes) ``oms search --space cnn`` into ``--out``, then trains ``DEFAULT_CNN`` with the
same training config (steps, batch, optimizer) and the same seeds as the search's best model was
re-trained with: the best searched spec and the baseline are each re-trained with ``--retrain-seeds``
seeds so the comparison is not one lucky initialisation. One JSON line per result:

    .venv/bin/python benchmarks/cnn_search.py --budget 30 --steps 300 --out runs/cnn_mnist

``--prior DIR ...`` warm-starts the chain from earlier searches (e.g. a digits search: only the states the two
grammars share carry over); the result line then also gives the best validation accuracy after 10, 20, ...
evaluations, to compare a cold and a warm search with the same ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--strategy", default="markov")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/cnn_mnist")
    ap.add_argument("--prior", nargs="+", help="earlier search directories to warm-start the chain from")
    args = ap.parse_args(argv)
    from openmindspore.automl import make_space, run_search
    from openmindspore.models.cnn import DEFAULT_CNN

    opts = {"steps": args.steps}
    t0 = time.perf_counter()
    res = run_search(
        "cnn",
        args.strategy,
        args.budget,
        out_dir=args.out,
        seed=args.seed,
        workers=args.workers,
        dataset=args.dataset,
        space_options=opts,
        prior=args.prior,
        on_trial=lambda t: print(
            json.dumps({"trial": t.trial, "status": t.status, "score": t.score, "duration_s": round(t.duration_s, 1)}),
            file=sys.stderr,
            flush=True,
        ),
    )
    b = res.best
    scores = [t.score if t.status == "ok" and t.score is not None else -np.inf for t in res.trials]
    best_at = {k: round(float(max(scores[:k])), 4) for k in range(10, len(scores) + 1, 10)}
    print(
        json.dumps(
            {
                "benchmark": "cnn_search",
                "dataset": args.dataset,
                "strategy": args.strategy,
                "seed": args.seed,
                "prior": args.prior,
                "budget": args.budget,
                "steps": args.steps,
                "failed": res.num_failed,
                "best_trial": b.trial,
                "best_val": b.score,
                "best_test": b.metrics["test"]["accuracy"],
                "best_spec": b.spec,
                "best_val_at": best_at,
                "search_seconds": round(time.perf_counter() - t0, 1),
            }
        ),
        flush=True,
    )
    space = make_space("cnn", args.dataset, **opts)
    for name, spec in (("searched", b.spec), ("default_cnn", DEFAULT_CNN)) if args.retrain_seeds > 0 else ():
        vals, tests = [], []
        for s in range(args.retrain_seeds):
            m = space.evaluate(spec, seed=1000 + s)
            vals.append(m["val"]["accuracy"])
            tests.append(m["test"]["accuracy"])
        print(
            json.dumps(
                {
                    "benchmark": "cnn_search",
                    "model": name,
                    "steps": args.steps,
                    "seeds": args.retrain_seeds,
                    "val_mean": round(float(np.mean(vals)), 4),
                    "test_mean": round(float(np.mean(tests)), 4),
                    "test_std": round(float(np.std(tests)), 4),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
