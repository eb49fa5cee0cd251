"""Transfer benchmark of the warm-started chain on NAS-Bench-201's three datasets (issue 25).

For every ordered pair (A -> B) of cifar10, cifar100, imagenet and repetition r:

* source: a cold markov search of ``--source-budget`` evaluations on A with seed ``100000 + r``
  (disjoint from the targets' seeds ``0 .. reps-1``); its prior table (:mod:`openmindspore.automl.prior`);
  with ``--sources K``, K such searches (seeds ``100000 * (j + 1) + r``), pooled into one table as
  ``oms search --prior DIR1 ... DIRK`` pools K earlier searches' directories;
* misleading source: the same search on A's *inverted* table (validation accuracy ``100 - acc``:
  its elite are the worst cells);
* targets on B with seed r: ``cold`` (no prior), ``warm`` (prior from the source), ``misleading``
  (prior from the misleading source), ``sources-first`` (the baseline: evaluate the source's 10 best
  distinct cells first, then the cold chain), ``seeded-evolution`` (the other baseline: regularized
  evolution whose initial population is the source's 10 best distinct cells, evaluated first; then
  ordinary aging evolution with population 10 and tournament 10, the ``evolution-tuned`` setting of
  benchmarks/nas.py, chosen on CIFAR-10 seeds 1000-1099).

Regret as in benchmarks/nas.py (best mean accuracy in B's table minus the mean accuracy of the
best-by-validation model found), in % points; one JSON line per (pair, variant, budget) with the
mean and standard error over reps, plus a "summary" line per pair with the goals' ratios:

    .venv/bin/python benchmarks/nas_transfer.py --reps 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from openmindspore.automl import Grammar, Step, Trial, make_space, run_search
from openmindspore.automl.prior import prior_from_results
from openmindspore.automl.spaces.nb201 import NB201_DATASETS, NB201Space
from openmindspore.automl.strategies import STRATEGIES, MarkovSearch, Proposal, RegularizedEvolution


class InvertedNB201(NB201Space):
    """NAS-Bench-201 with validation accuracy ``100 - acc``: a search on it learns the worst cells."""

    def evaluate(self, spec: list[dict], seed: int) -> dict[str, dict[str, float]]:
        m = super().evaluate(spec, seed)
        m["val"]["accuracy"] = 100.0 - m["val"]["accuracy"]
        return m


class _EliteFirst:
    """Evaluates the source search's best distinct cells first (``elites``, in the source's order), then
    proposes as the strategy it is mixed into."""

    grammar: Grammar
    elites: list[list[tuple[str, int]]]

    def _set_elites(self, elites: list[list[list[Any]]]) -> None:
        self.elites = [[(str(s), int(i)) for s, i in path] for path in elites]

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        if len(history) < len(self.elites):
            path = self.elites[len(history)]
            return [Step(s, self.grammar.choice(s, i).id, 1.0, {}) for s, i in path], path, None
        return super().propose(history, rng)  # type: ignore[misc]


class SourcesFirst(_EliteFirst, MarkovSearch):
    """Baseline: evaluate the source search's best ``k`` distinct cells first, then the cold chain."""

    name = "sources-first"

    def __init__(self, grammar: Grammar, elites: list[list[list[Any]]]) -> None:
        super().__init__(grammar)
        self._set_elites(elites)


class SeededEvolution(_EliteFirst, RegularizedEvolution):
    """Baseline: regularized evolution whose initial population is the source search's best cells
    (evaluated first, in the source's order); after them, aging evolution as usual (the population is
    the ``population`` most recent successful trials: the elites until mutants replace them)."""

    name = "seeded-evolution"

    def __init__(self, grammar: Grammar, elites: list[list[list[Any]]], population: int = 10, sample: int = 10) -> None:
        super().__init__(grammar, population=population, sample=sample)
        self._set_elites(elites)


STRATEGIES["sources-first"] = SourcesFirst
STRATEGIES["seeded-evolution"] = SeededEvolution


VARIANTS = ("cold", "warm", "misleading", "sources-first", "seeded-evolution")


def _prior(space: NB201Space, budget: int, seeds: Sequence[int], k: int = 10) -> tuple[dict[str, Any], list]:
    """The prior table of one source search per seed in ``seeds`` (pooled as ``--prior DIR1 DIR2 ...`` pools
    search directories) and their ``k`` best distinct cells (by mean validation score over all of them)."""
    g = space.grammar
    sources, groups = [], {}  # type: ignore[var-annotated]
    for seed in seeds:
        res = run_search(space, "markov", budget, seed=seed)
        sources.append([([(s.state, s.choice) for s in t.steps], t.score) for t in res.trials if t.ok])
        for t in res.trials:
            if t.ok:
                groups.setdefault(tuple(t.path), []).append(float(t.score))  # type: ignore[arg-type]
    best = sorted(groups, key=lambda p: -float(np.mean(groups[p])))[:k]
    return prior_from_results(g, sources), [[list(x) for x in p] for p in best]


def _regret(space: NB201Space, best: float, trials: list, budgets: list[int]) -> list[float]:
    out = []
    for b in budgets:
        chosen = max((t for t in trials[:b] if t.ok), key=lambda t: (t.score, -t.trial))
        out.append(best - space.true_score(chosen.spec))
    return out


def _stat(x: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(x.mean()), 4), "sem": round(float(x.std(ddof=1) / np.sqrt(len(x))), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--source-budget", type=int, default=100)
    ap.add_argument(
        "--sources",
        type=int,
        default=1,
        help="source searches per repetition, pooled; the j-th (from 0) has seed 100000 * (j + 1) + the target's",
    )
    ap.add_argument("--budgets", type=int, nargs="+", default=[25, 30, 100])
    ap.add_argument(
        "--seed", type=int, default=0, help="repetition r: target seed seed + r, source seed 100000 + seed + r"
    )
    ap.add_argument("--options", default="{}", help="JSON chain options for the warm variants (tuning)")
    args = ap.parse_args(argv)
    opts = json.loads(args.options)
    t0 = time.perf_counter()
    spaces = {d: make_space("nb201", d) for d in NB201_DATASETS}
    best = {d: float(s.all_true_scores().max()) for d, s in spaces.items()}  # type: ignore[attr-defined]
    n_max = max(args.budgets)
    reg: dict[tuple[str, str, str], list[list[float]]] = {}
    for r in range(args.seed, args.seed + args.reps):
        seeds = [100000 * (j + 1) + r for j in range(args.sources)]
        priors = {d: _prior(spaces[d], args.source_budget, seeds) for d in NB201_DATASETS}  # type: ignore[arg-type]
        bad = {d: _prior(InvertedNB201(d), args.source_budget, seeds) for d in NB201_DATASETS}
        for b in NB201_DATASETS:
            sp = spaces[b]
            cold = _regret(sp, best[b], run_search(sp, "markov", n_max, seed=r).trials, args.budgets)  # type: ignore[arg-type]
            for a in NB201_DATASETS:
                if a == b:
                    continue
                reg.setdefault((a, b, "cold"), []).append(cold)
                for variant, table in (("warm", priors[a][0]), ("misleading", bad[a][0])):
                    res = run_search(sp, "markov", n_max, seed=r, strategy_options={**opts, "warm": table})
                    reg.setdefault((a, b, variant), []).append(_regret(sp, best[b], res.trials, args.budgets))  # type: ignore[arg-type]
                for base in ("sources-first", "seeded-evolution"):
                    res = run_search(sp, base, n_max, seed=r, strategy_options={"elites": priors[a][1]})
                    reg.setdefault((a, b, base), []).append(_regret(sp, best[b], res.trials, args.budgets))  # type: ignore[arg-type]
    for a in NB201_DATASETS:
        for b in NB201_DATASETS:
            if a == b:
                continue
            arr = {v: np.array(reg[(a, b, v)]) for v in VARIANTS}
            for v, x in arr.items():
                for j, bud in enumerate(args.budgets):
                    line = {"benchmark": "nas201-transfer", "source": a, "target": b, "variant": v, "budget": bud}
                    print(
                        json.dumps({**line, "reps": args.reps, **{f"regret_{k}": w for k, w in _stat(x[:, j]).items()}})
                    )
            j30, j25, j100 = args.budgets.index(30), args.budgets.index(25), args.budgets.index(100)
            summary = {
                "benchmark": "nas201-transfer",
                "source": a,
                "target": b,
                "summary": True,
                "warm30_over_cold30": round(float(arr["warm"][:, j30].mean() / arr["cold"][:, j30].mean()), 3),
                "warm25_minus_cold100": _stat(arr["warm"][:, j25] - arr["cold"][:, j100]),
                "misleading_minus_cold_30": _stat(arr["misleading"][:, j30] - arr["cold"][:, j30]),
                "misleading_minus_cold_100": _stat(arr["misleading"][:, j100] - arr["cold"][:, j100]),
                **{
                    f"warm_minus_{base}_{bud}": _stat(arr["warm"][:, j] - arr[base][:, j])
                    for base in ("sources-first", "seeded-evolution")
                    for bud, j in ((30, j30), (100, j100))
                },
                "reps": args.reps,
                "options": opts,
                "source_budget": args.source_budget,
                "sources": args.sources,
                "seconds": round(time.perf_counter() - t0, 1),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
