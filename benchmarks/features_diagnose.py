"""Why ``ours`` fails on a seed of the feature-engineering benchmark: one JSON line per (dataset, model, seed)
with the elimination in order (name, importance, CI, proxy_of, score-guard loss change and s.e.), what was
kept, the guarded features and, for a copy or proxy not named by its source's cluster, the naming test's
measurements (its marginal importance alone and given each kept feature).

    nice -n 19 .venv/bin/python benchmarks/features_diagnose.py wine logreg 100 101 102
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("GLOG_v", "3")
sys.path.insert(0, os.path.dirname(__file__))

import features as bench  # noqa: E402

from openmindspore.features.naming import explained_by  # noqa: E402
from openmindspore.features.selection import intervention_elimination  # noqa: E402


def diagnose(ds: str, model: str, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    case = bench.injected(ds, model, seed)
    est, X2, y, task, names2, inj, cluster = (case[k] for k in ("est", "X", "y", "task", "names", "inj", "cluster"))
    elim, _ = intervention_elimination(est, X2, y, task, names2, seed=seed)  # type: ignore[arg-type]
    kept, px = elim.kept_names, elim.proxies
    dropped = all(n not in kept for n in bench.INJ)
    named = bench.named_by_cluster(px, cluster)
    rec: dict[str, Any] = {
        "dataset": ds,
        "model": model,
        "seed": seed,
        "source": inj.source,
        "cluster": cluster,
        "success": dropped and named,
        "dropped_all_three": dropped,
        "named": named,
        "kept": kept,
        "proxies": px,
        "guarded": elim.guarded,
        "drops": [(d.name, d.importance, d.ci95, d.proxy_of, d.loss_change) for d in elim.drops],
        "final_ci": dict(zip(kept, elim.final_ci.tolist())),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_avg_1": round(os.getloadavg()[0], 2),
    }
    kidx = [names2.index(k) for k in kept]
    for n in ("injected_copy", "injected_proxy"):
        if n not in kept and px.get(n) not in cluster:
            _, info = explained_by(est, X2, y, task, names2.index(n), kidx, seed=seed)  # type: ignore[arg-type]
            rec["naming_" + n] = {
                "marginal": info["marginal"],
                "given": {names2[k]: v for k, v in info["given"].items()},
            }
    return rec


def main(argv: list[str]) -> int:
    from threadpoolctl import threadpool_limits

    if len(argv) < 3:
        print("usage: features_diagnose.py DATASET MODEL SEED [SEED ...]", file=sys.stderr)
        return 2
    with threadpool_limits(1):
        for s in argv[2:]:
            print(json.dumps(diagnose(argv[0], argv[1], int(s))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
