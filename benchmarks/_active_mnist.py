"""The MNIST-5k half of benchmarks/active.py (``--suite mnist`` and ``--suite mnist-ratio``): the default CNN with
dropout, each fit a fresh MindSpore process; see that script's docstring for the protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np

from openmindspore.active import ActiveConfig, run_active
from openmindspore.active.config import NEURAL_OPTIONS

MNIST = {
    "dataset": "mnist5k",
    "model": "cnn",
    "dropout": 0.5,
    "initial": 20,
    "batch": 80,
    "budget": 500,
    "folds": 0,
    "epochs": 20,
    "min_steps": 100,
    "mc_samples": 10,
}


MNIST_AT = (100, 180, 260, 340, 500)


FIT_KEYS = ("dataset", "model", "ensemble", *NEURAL_OPTIONS)  # what a fit is a function of, besides the labels


def mnist_rows(summaries: dict[str, dict], budget: int) -> list[dict]:
    """The ``mnist`` table: labels to 95% of full-data accuracy and the ratio to random's."""
    rand = summaries.get("random", {}).get("labels_to_95pct_full")
    out = []
    for name, s in summaries.items():
        n95 = s["labels_to_95pct_full"]
        # no ratio without random's run (mnist-ratio finds random's figure without a loop)
        ratio = None if n95 is None or "random" not in summaries else (rand if rand is not None else budget) / n95
        out.append(
            {
                "benchmark": "active",
                "table": "mnist",
                "config": name,
                "seeds": s["seeds"],
                "full_pool_accuracy": round(s["full_pool_accuracy"], 4),
                "labels_to_95pct_full": n95,
                "labels_to_99pct_full": s["labels_to_99pct_full"],
                "random_over_this": None if ratio is None else round(ratio, 2),
                "random_over_this_text": "-" if ratio is None else f"{'> ' if rand is None else ''}{ratio:.2f}",
                "ratio_is_lower_bound": ratio is not None and rand is None and name != "random",
                "goal_2x_fewer_than_random": name != "random" and ratio is not None and ratio >= 2.0,
                **{f"accuracy_at_{n}": _at(s, n) for n in MNIST_AT},
                "seconds_per_round": round(s["seconds_per_round"], 1),
            }
        )
    return out


def _at(summary: dict, n: int) -> float | None:
    c = summary["curve"]
    return next((a for k, a in zip(c["labels"], c["accuracy_mean"]) if k == n), None)


def _full_pool(run: Path, cfg: ActiveConfig) -> dict[int, float]:
    """The full-data accuracies per seed that run ``run`` measured, if its network and training match ``cfg``'s."""
    from openmindspore.active.state import SeedState, load_run

    old = load_run(run) if run.is_dir() else None
    if old is None or any(old["config"].get(k) != getattr(cfg, k) for k in FIT_KEYS):
        return {}
    states = (SeedState.load(run, s) for s in old["seeds"])
    return {st.seed: st.full_pool_accuracy for st in states if st is not None and st.full_pool_accuracy is not None}


def _preseed(cfg: ActiveConfig, out: Path, full: dict[int, float]) -> None:
    """Start run ``out`` with the shared full-data accuracies (what ``run_active`` would write, plus them)."""
    from openmindspore.active.run import prepare
    from openmindspore.active.state import VERSION, SeedState, load_run, write_json

    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    if load_run(out) is not None or not all(s in full for s in seeds):
        return
    _, model = prepare(cfg, out)
    write_json(
        out / "state.json", {"version": VERSION, "config": cfg.model_dump(), "seeds": list(seeds), "model_spec": model}
    )
    for s in seeds:
        SeedState(seed=s, full_pool_accuracy=full[s]).save(out)


def mnist_dir(work: str, strategy: str, batch: int) -> Path:
    """The run directory of ``strategy`` at ``batch`` labels per round (batch 80, the default, keeps its old name)."""
    return Path(work) / (f"mnist-{strategy}" if batch == MNIST["batch"] else f"mnist-{strategy}-b{batch}")


def mnist(args: argparse.Namespace) -> list[dict]:
    budget, batch = args.budget or MNIST["budget"], args.batch or MNIST["batch"]
    summaries, full = {}, {}
    for s in args.strategies or ["random", "margin"]:
        over = {"budget": budget, "batch": batch, "seed": args.seed, "seeds": args.seeds or 1, "strategy": s}
        cfg = ActiveConfig(**{**MNIST, "min_steps": args.min_steps, **over})
        out = mnist_dir(args.work, s, batch)
        for src in [Path(p) for p in args.full_from or []]:
            full = {**_full_pool(src, cfg), **full}
        _preseed(cfg, out, full)
        summaries[s] = run_active(cfg, out, workers=args.workers)
        full = {**full, **_full_pool(out, cfg)}
    rows = mnist_rows(summaries, budget)
    for r in rows:
        print(json.dumps(r, sort_keys=True), flush=True)
    return rows


def random_labels(cfg: ActiveConfig, n_pool: int, counts: list[int]) -> dict[int, list[int]]:
    """The labelled pool ids that ``oms active --strategy random`` (seed ``cfg.seed``, no audit stream)
    holds at each of ``counts``: its queries are drawn with ``default_rng([seed, round])`` from the
    unlabelled pool and never look at a model, so they need no fit (the loop's own functions, the loop's order)."""
    from openmindspore.active.strategies import initial_labels, select

    x = np.zeros((n_pool, 1))
    labeled = initial_labels(cfg.init, x, cfg.initial, np.random.default_rng([cfg.seed, 0])).tolist()
    out, r = {}, 0
    while True:
        if len(labeled) in counts:
            out[len(labeled)] = list(labeled)
        if len(labeled) >= max(counts):
            return out
        r += 1
        rng = np.random.default_rng([cfg.seed, r])
        labeled += select("random", None, x, np.asarray(labeled), cfg.batch, rng).tolist()  # type: ignore[arg-type]


def first_ok(ok: Callable[[int], bool], k0: int, n: int, stride: int) -> int | None:
    """The least index k in [0, n) with ``ok(k)``, assuming ``ok`` is False up to some index and True from
    it on (None when it is False at n - 1): probe ``k0``, walk ``stride`` indices at a time (down while
    ok, up while not) until the answer changes, then bisect that last stride. ``stride`` 1 is a plain walk."""
    if ok(k0):
        lo, hi = -1, k0  # ok(hi); not ok(lo), or lo == -1: nothing below is known
        while hi - stride >= 0:
            if not ok(hi - stride):
                lo = hi - stride
                break
            hi -= stride
    else:
        lo = k0
        while True:
            if lo + stride < n:
                if ok(lo + stride):
                    hi = lo + stride
                    break
                lo += stride
            elif lo < n - 1 and ok(n - 1):
                hi = n - 1
                break
            else:
                return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def random_crossing(
    args: argparse.Namespace,
    seed: int,
    margin_run: Path,
    random_run: Path | None,
    batch: int = MNIST["batch"],
    min_steps: int = MNIST["min_steps"],
) -> dict:
    """Seed ``seed``: margin's labels to 95% of full-data accuracy (from its run, ``batch`` labels per
    round) and random's at the same batch, found by fitting random's labelled sets only near the crossing
    (:func:`first_ok` over the grid initial + k x batch): start at the last grid count not above twice
    margin's figure, walk ~80 labels at a time (max(1, 80 // batch) grid steps) down while random is at or
    above the bar and up while it is below, then bisect the last step (accuracy is assumed to grow with
    the labels between the fitted points; at batch 80 this is the plain walk of phase 3). ``--dense`` then
    fits every grid count from margin's figure to that crossing and adds the first at or above the bar
    among them (``random_first_dense``, ``ratio_dense``): a check of that assumption.
    Fits are cached in ``--work``/mnist-random-at/seed_<S>.json (``seed_<S>_b<B>.json`` at another batch:
    other batches draw other random sets; ``_s<M>`` added for a floor of M steps other than 100); an earlier
    random loop run with the same options
    (``random_run``) supplies its fitted counts after its labels are checked to match."""
    from openmindspore.active.learners import learner_for
    from openmindspore.active.state import SeedState, write_json
    from openmindspore.data import load_dataset

    st = SeedState.load(margin_run, seed)
    assert st is not None and st.full_pool_accuracy is not None, f"margin run {margin_run} lacks seed {seed}"
    bar = 0.95 * st.full_pool_accuracy
    m95 = next((r["labels"] for r in st.rows if r["accuracy"] >= bar - 1e-12), None)
    over = {"budget": args.max_labels, "batch": batch, "min_steps": min_steps, "seed": seed, "seeds": 1}
    cfg = ActiveConfig(**{**MNIST, **over, "strategy": "random"})
    grid = list(range(cfg.initial, args.max_labels + 1, cfg.batch))
    ds = load_dataset(cfg.dataset)
    sets = random_labels(cfg, len(ds.x_train), grid)
    name = f"seed_{seed}" + ("" if batch == MNIST["batch"] else f"_b{batch}")
    name += "" if min_steps == MNIST["min_steps"] else f"_s{min_steps}"  # other training, other fits
    cache = Path(args.work) / "mnist-random-at" / f"{name}.json"
    acc: dict[int, float] = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.exists() else {}
    old = SeedState.load(random_run, seed) if random_run is not None and random_run.is_dir() else None
    for row in old.rows if old is not None else []:
        n = row["labels"]
        assert sorted(old.labeled[:n]) == sorted(sets[n]), f"{random_run} holds other random labels at {n}"
        acc.setdefault(n, row["accuracy"])
    learner = learner_for(cfg, ds, seed)

    def at(n: int) -> float:
        if n not in acc:
            t0 = time.perf_counter()
            learner.fit(np.asarray(sets[n]), np.asarray(ds.y_train)[sets[n]])
            acc[n] = float((learner.proba(ds.x_test).argmax(axis=1) == np.asarray(ds.y_test)).mean())
            print(
                json.dumps(
                    {
                        "seed": seed,
                        "random_labels": n,
                        "accuracy": acc[n],
                        "seconds": round(time.perf_counter() - t0, 1),
                        "load": os.getloadavg(),
                    }
                ),
                flush=True,
            )
            write_json(cache, {str(k): v for k, v in sorted(acc.items())})
        return acc[n]

    try:
        k0 = max(0, min(len(grid) - 1, ((2 * (m95 or args.max_labels)) - cfg.initial) // cfg.batch))
        k = first_ok(lambda i: at(grid[i]) >= bar, k0, len(grid), max(1, 80 // cfg.batch))
        r95 = None if k is None else grid[k]
        dense = None
        if args.dense and m95 is not None and r95 is not None:  # every count from margin's figure to r95
            dense = next((n for n in grid if m95 <= n <= r95 and at(n) >= bar), r95)
    finally:
        learner.close()  # type: ignore[attr-defined]
    ratio = None if m95 is None or r95 is None else r95 / m95
    return {
        "benchmark": "active",
        "table": "mnist_seed",
        "seed": seed,
        "batch": batch,
        "full_data_accuracy": st.full_pool_accuracy,
        "bar_95pct": round(bar, 4),
        "margin_labels_to_95": m95,
        "random_labels_to_95": r95,
        "random_fits": {str(k): v for k, v in sorted(acc.items())},
        "ratio": None if ratio is None else round(ratio, 3),
        "goal_2x": ratio is not None and ratio >= 2.0,
        **({} if dense is None or not m95 else {"random_first_dense": dense, "ratio_dense": round(dense / m95, 3)}),
    }


def mnist_ratio(args: argparse.Namespace) -> list[dict]:
    """Per seed: labels margin and random need to reach 95% of full-data accuracy, and their ratio."""
    from openmindspore.active.state import load_run

    keys = (*FIT_KEYS, "initial", "init", "batch", "audit")
    rows = []
    for mdir in [Path(p) for p in args.margin_from or []]:
        run = load_run(mdir)
        if run is None:
            _fail(f"--margin-from {mdir}: no oms active run there; pass the run directory of a --suite mnist run")
        c = run["config"]
        bad = [
            f"{k}={c.get(k)!r} (expected {MNIST[k]!r})"
            for k in keys
            if k not in ("batch", "min_steps") and c.get(k) != MNIST.get(k, c.get(k))
        ]
        if bad:
            _fail(f"--margin-from {mdir}: not the MNIST protocol: {', '.join(bad)}; pass a --suite mnist run")
        if args.batch is not None and c["batch"] != args.batch:
            _fail(
                f"--batch {args.batch}: the margin run {mdir} used batch {c['batch']}; drop --batch or pass that run's"
            )
        for seed in run["seeds"]:
            rdir = next((Path(p) for p in args.random_from if _same_random(Path(p), c, seed, keys)), None)
            rows.append(random_crossing(args, seed, mdir, rdir, c["batch"], c["min_steps"]))
            print(json.dumps(rows[-1], sort_keys=True), flush=True)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    mean = {
        "benchmark": "active",
        "table": "mnist_seed",
        "seed": "mean",
        "ratio": float(np.mean(ratios)) if ratios else None,
    }
    rows.append({**mean, "goal_2x": mean["ratio"] is not None and mean["ratio"] >= 2.0})
    print(json.dumps(rows[-1], sort_keys=True), flush=True)
    return rows


def _fail(message: str) -> NoReturn:
    print(f"active.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _same_random(path: Path, margin_cfg: dict, seed: int, keys: tuple[str, ...]) -> bool:
    from openmindspore.active.state import load_run

    run = load_run(path) if path.is_dir() else None
    c = None if run is None else run["config"]
    return (
        c is not None
        and c["strategy"] == "random"
        and seed in run["seeds"]
        and all(c[k] == margin_cfg[k] for k in keys)
    )
