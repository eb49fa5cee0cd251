"""``oms features``: intervention importance, selection, construction and proxies for tabular data."""

from __future__ import annotations

import argparse

from openmindspore.cli._common import add_command, print_json

__all__ = ["register", "run"]

EXAMPLES = """\
  oms features --dataset wine --out runs/feat-wine                          # rank: marginal + conditional
  oms features --dataset wine --model random_forest --select --inject --out runs/feat-inject
  oms features --dataset friedman1 --model ridge --construct --out runs/feat-f1
  oms features --dataset breast_cancer --select --seeds 5 --out runs/feat-bc --json
  oms features --dataset diabetes --model ridge --select --tolerance 0 --out runs/feat-dia   # keep more columns
  oms features --model runs/wine-mlp --out runs/feat-mlp                    # a trained mlp run: ranking only

statuses in ranking.json: kept, dropped, proxy_of:X (important only through X), constructed:FORMULA."""


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "features",
        "intervention-based feature importance, selection and construction (tabular data)",
        EXAMPLES,
        "Measure each feature's held-out loss change under marginal (permutation) and conditional\n"
        "(X_j | X_-j) interventions with 95% CIs (K-fold cross-fitting over train+val, bootstrap over rows\n"
        "and repeats); optionally eliminate features backward on conditional importance (--select),\n"
        "construct products/ratios/logs/squares/bins of the top features (--construct) and name proxies.\n"
        "Writes OUT/ranking.json, OUT/selected.json and OUT/importance.png.",
    )
    p.add_argument("--dataset", help="a tabular dataset (see `oms datasets`); optional with a run directory")
    p.add_argument(
        "--model",
        help="logreg | random_forest | hist_gb | svm | ridge, or an mlp RUN_DIR "
        "(default: logreg for classification, ridge for regression)",
    )
    p.add_argument("--kind", default="conditional", help="conditional | marginal: what --select eliminates on")
    p.add_argument(
        "--select",
        action="store_true",
        help="backward elimination (stop: every CI lower bound > 0); dropped features that carry information of "
        "their own then come back (not with --minimal)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="--select's score guard: how many standard errors of the full set's cross-fitted loss the selected "
        "set may lose (default 1, the one-s.e. rule; 0 keeps more features and loses less score)",
    )
    p.add_argument(
        "--minimal",
        action="store_true",
        help="--select's smallest set: no dropped feature comes back for carrying information of its own "
        "(default: it does, which keeps the score of all features on correlated measurements)",
    )
    p.add_argument("--construct", action="store_true", help="construct features from the top-k (after --select)")
    p.add_argument("--inject", action="store_true", help="add the benchmark columns: noise, noisy copy, proxy")
    p.add_argument("--seeds", type=int, default=1, help="repeat over split seeds 0..K-1 and aggregate (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="interventions per row (default 5)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--json", action="store_true", help="print selected.json as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no per-seed progress")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from openmindspore.features.analysis import analyse_seed, features_config
    from openmindspore.features.report import aggregate, write_outputs

    cfg = features_config(
        {
            "dataset": args.dataset,
            "model": args.model,
            "kind": args.kind,
            "select": args.select,
            "construction": args.construct,
            "inject": args.inject,
            "seeds": args.seeds,
            "repeats": args.repeats,
            "folds": args.folds,
            "tolerance": args.tolerance,
            "minimal": args.minimal,
        }
    )
    console = Console(stderr=True, quiet=args.quiet or args.json)
    results = []
    for seed in range(cfg.seeds):
        r = analyse_seed(cfg, seed)
        results.append(r)
        scores = " ".join(f"{k}={v:.4f}" for k, v in r.scores.items() if not k.startswith("n_"))
        console.print(
            f"seed {seed + 1}/{cfg.seeds}: kept {len(r.kept)}/{len(r.names)}, "
            f"proxies {len(r.proxies)}, constructed {len(r.constructed)} {scores}",
            highlight=False,
        )
    agg = aggregate(cfg, results)
    paths = write_outputs(args.out, agg)
    sel = agg["selected"]
    if args.json:
        print_json({**sel, "files": paths})
        return 0
    for row in agg["ranking"]["features"]:
        c = row["conditional"]
        m = row.get("marginal")
        marg = f"marginal {m['importance']:+.4f} " if m else ""
        print(
            f"{row['name']:>28} {marg}conditional {c['importance']:+.4f} "
            f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]  {row['status']}"
        )
    if cfg.select:
        print(f"selected {sel['n_features']['selected']}/{sel['n_features']['all']}: {', '.join(sel['selected'])}")
    if sel["constructed"]:
        print("constructed: " + ", ".join(sel["constructed"]))
    for k, v in sel["test_scores"].items():
        print(f"test {sel['metric']} with {k} features: {v['mean']:.4f}")
    print(f"wrote {paths['ranking']}, {paths['selected']}, {paths['png']}")
    return 0
