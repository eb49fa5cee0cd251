"""CNN search with and without successive halving at equal total training steps.

Without halving: ``--plain`` models, each trained ``--steps`` steps. With ``--halving ETA,RUNGS``: as
many models as the same total number of training steps allows (e.g. eta 3, 3 rungs: 3x the models at
steps/9, the best third at steps/3, the best ninth at steps). Both report the best model's validation
accuracy at the full ``--steps`` (and its test accuracy), one JSON line per search; timings record the
load average and are labelled "under load" above 3:

    .venv/bin/python benchmarks/halving.py --dataset digits --steps 270 --plain 9 --halving 3,3 --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--steps", type=int, default=270)
    ap.add_argument("--plain", type=int, default=9, help="models of the search without halving")
    ap.add_argument("--halving", default="3,3")
    ap.add_argument("--strategy", default="markov")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", help="keep the search directories here (default: a temporary folder)")
    args = ap.parse_args(argv)
    from openmindspore.automl import run_search
    from openmindspore.automl.halving import parse_halving, rung_sizes

    h = parse_halving(args.halving)
    assert h is not None
    eta, rungs = h["eta"], h["rungs"]
    per_model = sum(args.steps // eta ** (rungs - 1 - r) * (eta**-r) for r in range(rungs))  # steps per proposal
    n_sh = round(args.plain * args.steps / per_model)
    root = Path(args.out or tempfile.mkdtemp(prefix="halving-"))
    for seed in args.seeds:
        for mode, n, halving in (("plain", args.plain, None), ("halving", n_sh, h)):
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            res = run_search(
                "cnn",
                args.strategy,
                n,
                out_dir=root / f"{mode}-{seed}",
                seed=seed,
                dataset=args.dataset,
                space_options={"steps": args.steps},
                halving=halving,
            )
            wall = time.perf_counter() - t0
            load = max(load0, os.getloadavg()[0])
            if halving is None:
                sizes, budgets = [n], [args.steps]
            else:
                sizes, budgets = rung_sizes(n, eta, rungs), res.config["halving"]["budgets"]
            b = res.best
            emit(
                {
                    "benchmark": "halving",
                    "mode": mode,
                    "halving": args.halving if halving else None,
                    "dataset": args.dataset,
                    "strategy": args.strategy,
                    "seed": seed,
                    "models": n,
                    "evaluations": len(res.trials) + len(res.promotions),
                    "total_steps": sum(k * s for k, s in zip(sizes, budgets)),
                    "failed": res.num_failed,
                    "best_budget": args.steps if b is None or b.budget is None else b.budget,
                    "best_val": None if b is None else round(b.score, 4),
                    "best_test": None if b is None else round(b.metrics["test"]["accuracy"], 4),
                    "wall_s": round(wall, 1),
                    "load_avg": round(load, 2),
                    "label": "under load" if load > 3 else "quiet",
                }
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
