"""How much of the selected set's held-out loss the selection's own rows can see (issue 18 diagnosis).

For every seed of one case in a ``benchmarks/features.py`` details file (method ``ours``), rebuild the seed's data
and compare three column sets - ``full`` (all, injected included), ``kept`` (the record's selection), ``real``
(all but the injected columns) - by their cross-fitted mean loss on train+val (the selection's rows; the folds
and model seed of the selection, or fresh ones with ``--refold``) and their test score (the benchmark's)::

    .venv/bin/python benchmarks/features_optimism.py docs/features_seeds_240-259_main.jsonl diabetes:random_forest

One JSON line per seed, then a summary line: mean kept - full cross-fitted change (in units of the full set's
s.e., and in R^2 for regression) against the mean kept - full test score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as fb  # noqa: E402

from openmindspore.features.estimators import holdout_score, resolve_model  # noqa: E402
from openmindspore.features.importance import CrossFit  # noqa: E402


def seed_row(dataset: str, model: str, record: dict, refold: bool) -> dict:
    seed = record["seed"]
    c = fb.injected(dataset, model, seed)
    X, y, Xt, yt, task, names = (c[k] for k in ("X", "y", "Xt", "yt", "task", "names"))
    fit_seed = seed + 1000 if refold else seed
    est = resolve_model(model, task, fit_seed)[0] if refold else c["est"]
    sets = {
        "full": list(range(len(names))),
        "kept": [names.index(n) for n in record["kept"]],
        "real": [i for i, n in enumerate(names) if n not in fb.INJ],
    }
    row: dict = {"seed": seed, "task": task, "y_var": float(np.var(y))}
    for key, cols in sets.items():
        cf = CrossFit(est, X[:, cols], y, task, 5, fit_seed)
        cf.parts()
        row[f"{key}_cv_loss"] = float(cf.base.mean())
        row[f"{key}_cv_se"] = float(cf.base.std(ddof=1) / np.sqrt(len(cf.base)))
        row[f"{key}_test"] = holdout_score(est, X[:, cols], y, Xt[:, cols], yt, task)
    return row


def summary(rows: list[dict], regression: bool) -> dict:
    def a(k: str) -> np.ndarray:
        return np.array([r[k] for r in rows])

    out = {
        "seeds": len(rows),
        "kept_minus_full_cv_in_se": float(np.mean((a("kept_cv_loss") - a("full_cv_loss")) / a("full_cv_se"))),
        "kept_minus_full_test": float(np.mean(a("kept_test") - a("full_test"))),
        "real_minus_full_test": float(np.mean(a("real_test") - a("full_test"))),
    }
    if regression:  # the cross-fitted MSE as R^2 on the same rows
        out["kept_minus_full_cv_r2"] = float(np.mean((a("full_cv_loss") - a("kept_cv_loss")) / a("y_var")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("details", help="a benchmarks/features.py details file")
    ap.add_argument("case", help="DATASET:MODEL, e.g. diabetes:random_forest")
    ap.add_argument("--refold", action="store_true", help="fresh folds and model seed (seed + 1000)")
    args = ap.parse_args(argv)
    dataset, model = args.case.split(":")
    with open(args.details) as f:
        records = [json.loads(line) for line in f if line.strip()]
    case = {"kind": "seed", "dataset": dataset, "model": model, "method": "ours"}
    mine = [r for r in records if all(r.get(k) == v for k, v in case.items())]
    rows = []
    for r in sorted(mine, key=lambda r: r["seed"]):
        rows.append(seed_row(dataset, model, r, args.refold))
        print(json.dumps(rows[-1]), flush=True)
    regression = bool(rows) and rows[0]["task"] == "regression"
    print(json.dumps({"kind": "summary", "case": args.case, "refold": args.refold, **summary(rows, regression)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
