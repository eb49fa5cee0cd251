"""Intervention-based feature selection vs the same drop rule on other importances; construction on friedman1.

**Injection** (wine, breast_cancer: logreg and random forest; diabetes: ridge and random forest). Per seed
(the seed varies the train/val/test split and the injection noise) three columns are added: pure noise,
a noisy copy of the most important feature (largest cross-fitted permutation importance of the model)
and a nonlinear proxy tanh(x_k) + noise. Each method eliminates backward with the same rule (drop a
feature whose 95% CI lower bound is <= 0, recompute, stop when every lower bound is > 0) on train+val:

* ``ours``: conditional intervention importance (``InterventionSelector``'s rule: the drop rule plus the
  score guard, which undoes a drop that costs more than one s.e. of cross-fitted loss), dropped features
  named ``proxy_of`` the kept feature whose conditioning removes them;
* ``permutation``: marginal (permutation) importance, same cross-fitting and CI;
* ``impurity``: random-forest impurity importance, one forest per fold, t-interval over the 5 folds;
* ``shap``: mean |interventional SHAP| of the model on held-out rows (``shap`` Linear/TreeExplainer,
  background = the training folds), cross-fitted, bootstrap CI over rows.

Success: the three injected columns are dropped; for ``ours`` also the copy and the proxy named
``proxy_of:<source>``, where naming any member of the source's cluster of near-duplicates (|corr| > 0.9 or
cross-fitted R^2 > 0.9 with it, :func:`openmindspore.features.naming.near_duplicates`) counts: which
member of a cluster is kept is arbitrary, and the proxy is named by the kept one (the exact-source rate is
reported too). Scores: the model refitted on train+val with all / selected features, on test.

**friedman1**: (a) x6..x10 rank below x1..x5 by conditional importance (random forest); (b) features
selected by a random forest, then constructed for ridge: ridge's test R^2 on them vs ridge on
PolynomialFeatures(2) of all 10 features (65 columns).

One JSON line per result (summaries on stdout; ``--details`` writes one line per seed and method)::

    .venv/bin/python benchmarks/features.py --seeds 20 --workers 2 --details runs/features_seeds.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_v", "3")

from openmindspore.features import FeatureConstructor, inject_columns  # noqa: E402
from openmindspore.features.analysis import dataset_feature_names  # noqa: E402
from openmindspore.features.estimators import fit_clone, holdout_score, resolve_model  # noqa: E402
from openmindspore.features.importance import importances  # noqa: E402
from openmindspore.features.interventions import fold_ids  # noqa: E402
from openmindspore.features.naming import near_duplicates  # noqa: E402
from openmindspore.features.selection import eliminate, intervention_elimination  # noqa: E402

CASES = [
    ("wine", "logreg"),
    ("wine", "random_forest"),
    ("breast_cancer", "logreg"),
    ("breast_cancer", "random_forest"),
    ("diabetes", "ridge"),
    ("diabetes", "random_forest"),
]
METHODS = ("ours", "permutation", "impurity", "shap")
INJ = ("injected_noise", "injected_copy", "injected_proxy")


def _data(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str, list[str]]:
    from openmindspore.data import load_dataset

    ds = load_dataset(name, split_seed=seed)
    X = np.vstack([ds.x_train, ds.x_val]).astype(np.float64)
    y = np.concatenate([ds.y_train, ds.y_val])
    return X, y, ds.x_test.astype(np.float64), ds.y_test, ds.task, dataset_feature_names(name, X.shape[1])


def _impurity_score(X: np.ndarray, y: np.ndarray, task: str, seed: int):
    """Random-forest impurity importance per fold (5 folds), t-interval over the folds."""
    from scipy import stats

    forest, _ = resolve_model("random_forest", task, seed)  # type: ignore[arg-type]

    def score(cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
        fid = fold_ids(len(X), 5, seed, y if task == "classification" else None)
        fits = [fit_clone(forest, X[fid != k][:, cols], y[fid != k]) for k in range(5)]
        vals = np.array([_final(f)[1].feature_importances_ for f in fits])
        m, se = vals.mean(0), vals.std(0, ddof=1) / np.sqrt(5)
        t = stats.t.ppf(0.975, 4)
        return m, np.stack([m - t * se, m + t * se], axis=1)

    return score


def _final(est: Any) -> tuple[Any, Any]:
    """(transformer before the model, the model itself) of a fitted preset pipeline."""
    model = est[-1]
    model = getattr(model, "regressor_", model)
    return est[:-1], model


def _shap_score(est: Any, X: np.ndarray, y: np.ndarray, task: str, seed: int):
    """Mean |interventional SHAP| on held-out rows (5-fold cross-fitted), bootstrap CI over rows."""
    import shap

    from openmindspore.features.importance import bootstrap_ci

    def score(cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
        fid = fold_ids(len(X), 5, seed, y if task == "classification" else None)
        phi = np.empty((len(X), len(cols)))
        for k in range(5):
            tr, te = fid != k, fid == k
            fitted = fit_clone(est, X[tr][:, cols], y[tr])
            pre, model = _final(fitted)
            bg = pre.transform(X[tr][:, cols])
            bg = bg[np.random.default_rng([seed, k]).permutation(len(bg))[:100]]
            xt = pre.transform(X[te][:, cols])
            if hasattr(model, "estimators_"):
                ex = shap.TreeExplainer(model, data=bg, feature_perturbation="interventional")
                v = ex.shap_values(xt, check_additivity=False)
            else:
                ex = shap.LinearExplainer(model, shap.maskers.Independent(bg, max_samples=100))
                v = ex.shap_values(xt)
            v = np.asarray(v)
            if v.ndim == 3:  # (rows, features, classes) or (classes, rows, features)
                v = np.abs(v).sum(axis=2) if v.shape[1] == len(cols) else np.abs(v).sum(axis=0)
            phi[te] = np.abs(v)
        return bootstrap_ci(phi.T[:, None, :], 500, np.random.default_rng([seed, len(cols), 7]))

    return score


def injected(dataset: str, model: str, seed: int) -> dict[str, Any]:
    """One seed's case: the model, the data with the three columns injected (train ``X``, ``y``; test ``Xt``,
    ``yt``), ``task``, ``names``, the injection ``inj`` and the ``cluster`` (names) of its source."""
    X, y, Xt, yt, task, names = _data(dataset, seed)
    est, _ = resolve_model(model, task, seed)  # type: ignore[arg-type]
    marg = importances(est, X, y, ("marginal",), 3, seed=seed, task=task, n_boot=0)["marginal"]  # type: ignore
    src = int(np.argmax(marg.mean))
    cluster = [names[c] for c in near_duplicates(X, src, seed=seed)]  # the source and its near-duplicates
    both, names2, inj = inject_columns(np.vstack([X, Xt]), names, src, seed)
    return {
        "est": est, "X": both[: len(X)], "y": y, "Xt": both[len(X) :], "yt": yt, "task": task,
        "names": names2, "inj": inj, "cluster": cluster,
    }  # fmt: skip


def named_by_cluster(proxies: dict[str, str], cluster: list[str]) -> bool:
    """Whether the copy and the proxy are both named by a member of their source's cluster (module doc)."""
    return proxies.get("injected_copy") in cluster and proxies.get("injected_proxy") in cluster


def injection_seed(
    dataset: str, model: str, seed: int, methods: tuple[str, ...], tolerance: float = 1.0
) -> list[dict[str, Any]]:
    """Every method on one seed of one (dataset, model): one record per method (``tolerance``: ours' score guard)."""
    case = injected(dataset, model, seed)
    est, X2, y, Xt2, yt, task = (case[k] for k in ("est", "X", "y", "Xt", "yt", "task"))
    names2, inj, cluster = case["names"], case["inj"], case["cluster"]
    all_score = holdout_score(est, X2, y, Xt2, yt, task)  # type: ignore[arg-type]
    out = []
    for method in methods:
        t0 = time.perf_counter()
        proxies: dict[str, str] = {}
        if method in ("ours", "permutation"):
            kind = "conditional" if method == "ours" else "marginal"
            elim, first = intervention_elimination(  # the marginal rule has no guard: tolerance is ours' only
                est,
                X2,
                y,
                task,
                names2,
                kind=kind,
                seed=seed,
                tolerance=tolerance,  # type: ignore[arg-type]
            )
            if method == "ours":
                proxies = elim.proxies
        elif method == "impurity":
            elim = eliminate(names2, _impurity_score(X2, y, task, seed))
        else:
            elim = eliminate(names2, _shap_score(est, X2, y, task, seed))
        kept = elim.kept_names
        cols = [names2.index(n) for n in kept]
        dropped = all(n not in kept for n in INJ)
        named = named_by_cluster(proxies, cluster)
        named_exact = proxies.get("injected_copy") == inj.source and proxies.get("injected_proxy") == inj.source
        back = [o for o in getattr(elim, "readmitted", []) if o.made]
        rechecked = {o.name for o in getattr(elim, "rechecked", []) if o.made}  # dropped by the second check
        pre = [n for n in names2 if n in kept or n in rechecked]  # the selection before the second check
        before = [n for n in pre if n not in {o.name for o in back}]  # before the readmission too
        proxies_before = elim.named_before_readmission  # the drops are named again after a readmission
        named_before = named_by_cluster(proxies_before, cluster)
        success_before = all(n not in before for n in INJ) and named_before
        pre_named = named_by_cluster(getattr(elim, "named_before_recheck", {}), cluster)
        success_pre = all(n not in pre for n in INJ) and pre_named
        score = holdout_score(est, X2[:, cols], y, Xt2[:, cols], yt, task)  # type: ignore[arg-type]
        score_pre = _score_of(pre, kept, score, case)
        score_before = score_pre if before == pre else _score_of(before, kept, score, case)
        out.append(
            {
                "kind": "seed",
                "dataset": dataset,
                "model": model,
                "method": method,
                "seed": seed,
                "source": inj.source,
                "source_cluster": cluster,
                "dropped_all_three": dropped,
                "named": named if method == "ours" else None,
                "named_exact_source": named_exact if method == "ours" else None,
                "guarded": getattr(elim, "guarded", []),
                "swaps": getattr(elim, "swaps", {}),
                "oriented": [dataclasses.asdict(o) for o in getattr(elim, "oriented", [])],
                "pruned": [dataclasses.asdict(o) for o in getattr(elim, "pruned", [])],
                "readmitted": [o.name for o in back],
                "readmitted_twins": [o.name for o in back if o.twin],  # by the twin rule
                "kept_before_readmission": before,
                "success_before_readmission": success_before if method == "ours" else None,
                "proxies_before_readmission": proxies_before,
                "success_before_renaming": dropped and named_before if method == "ours" else None,
                "score_before_readmission": score_before,
                "rechecked": [dataclasses.asdict(o) for o in getattr(elim, "rechecked", [])],
                "kept_before_recheck": pre,
                "success_before_recheck": success_pre if method == "ours" else None,
                "score_before_recheck": score_pre,
                "success": dropped and (named or method != "ours"),
                "kept": kept,
                "n_kept": len(kept),
                "n_features": len(names2),
                "proxies": proxies,
                "score_all": all_score,
                "score_selected": score,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    return out


def _score_of(subset: list[str], kept: list[str], kept_score: float, case: dict[str, Any]) -> float:
    """The holdout score of the model on ``subset`` of the case's columns (``kept_score`` when it is the kept set)."""
    if subset == kept:
        return kept_score
    c = [case["names"].index(n) for n in subset]
    X, Xt = case["X"], case["Xt"]
    return holdout_score(case["est"], X[:, c], case["y"], Xt[:, c], case["yt"], case["task"])


def friedman_seed(seed: int, tolerance: float = 1.0) -> list[dict[str, Any]]:
    from sklearn.preprocessing import PolynomialFeatures

    X, y, Xt, yt, task, names = _data("friedman1", seed)
    forest, _ = resolve_model("random_forest", "regression", seed)
    ridge, _ = resolve_model("ridge", "regression", seed)
    t0 = time.perf_counter()
    r = importances(forest, X, y, ("marginal", "conditional"), 5, seed=seed, task="regression", n_boot=500)
    ranks = {}
    for kind, imp in r.items():
        ranks[kind] = bool(imp.mean[:5].min() > imp.mean[5:].max())
    elim, _ = intervention_elimination(forest, X, y, "regression", names, seed=seed, tolerance=tolerance)
    cols = [names.index(n) for n in elim.kept_names]
    fc = FeatureConstructor(ridge, top_k=5, max_new=5, random_state=seed).fit(X[:, cols], y, elim.kept_names)
    Z, Zt = fc.transform(X[:, cols]), fc.transform(Xt[:, cols])
    poly = PolynomialFeatures(2, include_bias=False).fit(X)
    rec = {
        "kind": "seed",
        "dataset": "friedman1",
        "seed": seed,
        "noise_ranked_below_conditional": ranks["conditional"],
        "noise_ranked_below_marginal": ranks["marginal"],
        "kept": elim.kept_names,
        "constructed": fc.formulas_,
        "n_constructed_features": int(Z.shape[1]),
        "r2_ridge_raw": holdout_score(ridge, X, y, Xt, yt, "regression"),
        "r2_ridge_selected": holdout_score(ridge, X[:, cols], y, Xt[:, cols], yt, "regression"),
        "r2_ridge_constructed": holdout_score(ridge, Z, y, Zt, yt, "regression"),
        "r2_ridge_poly2": holdout_score(ridge, poly.transform(X), y, poly.transform(Xt), yt, "regression"),
        "n_poly2_features": int(poly.n_output_features_),
        "r2_forest_all": holdout_score(forest, X, y, Xt, yt, "regression"),
        "r2_forest_selected": holdout_score(forest, X[:, cols], y, Xt[:, cols], yt, "regression"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return [rec]


def _task(job: tuple) -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        recs = friedman_seed(*job[1:]) if job[0] == "friedman1" else injection_seed(*job)
    for r in recs:
        r["load_avg_1"] = round(os.getloadavg()[0], 2)  # the machine's load when the job ended
        r["tolerance"] = job[-1]
    return recs


def _se(v: list[float]) -> float:
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def _rate(rs: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([bool(r[key]) for r in rs]))


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r.get("model"), r.get("method")), []).append(r)
    for (ds, model, method), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        n = len(rs)
        if ds == "friedman1":
            rc, rp = [r["r2_ridge_constructed"] for r in rs], [r["r2_ridge_poly2"] for r in rs]
            fa, fs = [r["r2_forest_all"] for r in rs], [r["r2_forest_selected"] for r in rs]
            informative = sorted(f"x{i}" for i in range(1, 6))
            formulas: dict[str, int] = {}
            for r in rs:
                for f in r["constructed"]:
                    formulas[f] = formulas.get(f, 0) + 1
            out.append(
                {
                    "benchmark": "features",
                    "dataset": ds,
                    "seeds": n,
                    "noise_ranked_below_rate_conditional": _rate(rs, "noise_ranked_below_conditional"),
                    "noise_ranked_below_rate_marginal": _rate(rs, "noise_ranked_below_marginal"),
                    "x1_to_x5_kept_exactly_rate": float(np.mean([sorted(r["kept"]) == informative for r in rs])),
                    "n_constructed_features_max": int(max(r["n_constructed_features"] for r in rs)),
                    "r2_ridge_constructed_mean": float(np.mean(rc)),
                    "r2_ridge_poly2_mean": float(np.mean(rp)),
                    "r2_ridge_raw_mean": float(np.mean([r["r2_ridge_raw"] for r in rs])),
                    "constructed_at_least_poly2_rate": float(np.mean(np.array(rc) >= np.array(rp))),
                    "r2_diff_mean": float(np.mean(np.array(rc) - np.array(rp))),
                    "r2_diff_se": _se(list(np.array(rc) - np.array(rp))),
                    "r2_forest_all_mean": float(np.mean(fa)),
                    "r2_forest_selected_mean": float(np.mean(fs)),
                    "r2_forest_all_se": _se(fa),
                    "formulas": dict(sorted(formulas.items(), key=lambda kv: -kv[1])),
                }
            )
            continue
        sa, ss = [r["score_all"] for r in rs], [r["score_selected"] for r in rs]
        diff = list(np.array(ss) - np.array(sa))
        out.append(
            {
                "benchmark": "features",
                "dataset": ds,
                "model": model,
                "method": method,
                "seeds": n,
                "success_rate": _rate(rs, "success"),
                "dropped_all_three_rate": _rate(rs, "dropped_all_three"),
                "named_rate": _rate(rs, "named") if method == "ours" else None,
                "named_exact_rate": _rate(rs, "named_exact_source") if method == "ours" else None,
                "source_cluster_size_mean": float(np.mean([len(r.get("source_cluster", [r["source"]])) for r in rs])),
                "guarded_mean": float(np.mean([len(r.get("guarded", [])) for r in rs])),
                "dropped_rate": {n_: float(np.mean([n_ not in r["kept"] for r in rs])) for n_ in INJ},
                "n_kept_mean": float(np.mean([r["n_kept"] for r in rs])),
                "n_features": rs[0]["n_features"],
                "score_all_mean": float(np.mean(sa)),
                "score_all_se": _se(sa),
                "score_selected_mean": float(np.mean(ss)),
                "score_diff_mean": float(np.mean(diff)),
                "score_diff_se": _se(diff),
                "within_one_se": bool(np.mean(ss) >= np.mean(sa) - _se(sa)),
                "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
            }
        )
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The tables of the "Feature engineering" section of docs/benchmarks.md."""
    rows = [
        "| dataset | model | method | seeds | success | all 3 dropped | named (cluster / exact source) "
        "| noise / copy / proxy dropped | kept (of) | score all | score selected | diff ± s.e. | within 1 s.e. |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        if s["dataset"] == "friedman1":
            continue
        d = s["dropped_rate"]
        rows.append(
            f"| {s['dataset']} | {s['model']} | {s['method']} | {s['seeds']} | {_pct(s['success_rate'])} "
            f"| {_pct(s['dropped_all_three_rate'])} | {_pct(s['named_rate'])} / {_pct(s.get('named_exact_rate'))} "
            f"| {' / '.join(_pct(d[n]) for n in INJ)} | {s['n_kept_mean']:.1f} ({s['n_features']}) "
            f"| {s['score_all_mean']:.3f} ± {s['score_all_se']:.3f} | {s['score_selected_mean']:.3f} "
            f"| {s['score_diff_mean']:+.3f} ± {s['score_diff_se']:.3f} | {'yes' if s['within_one_se'] else 'no'} |"
        )
    for s in summaries:
        if s["dataset"] != "friedman1":
            continue
        rows += [
            "",
            "| friedman1 | value |",
            "|---|---:|",
            f"| seeds | {s['seeds']} |",
            f"| x6..x10 below x1..x5, conditional (random forest) | {_pct(s['noise_ranked_below_rate_conditional'])} |",
            f"| x6..x10 below x1..x5, marginal (random forest) | {_pct(s['noise_ranked_below_rate_marginal'])} |",
            f"| selection (random forest) kept exactly x1..x5 | {_pct(s['x1_to_x5_kept_exactly_rate'])} |",
            f"| ridge test R², 10 raw features | {s['r2_ridge_raw_mean']:.3f} |",
            f"| ridge test R², selected + constructed (at most {s['n_constructed_features_max']} features) "
            f"| {s['r2_ridge_constructed_mean']:.3f} |",
            f"| ridge test R², PolynomialFeatures(2) (65 features) | {s['r2_ridge_poly2_mean']:.3f} |",
            f"| constructed - poly2, mean ± s.e. | {s['r2_diff_mean']:+.3f} ± {s['r2_diff_se']:.3f} |",
            f"| seeds where constructed >= poly2 | {_pct(s['constructed_at_least_poly2_rate'])} |",
            f"| random forest test R², all / selected | {s['r2_forest_all_mean']:.3f} ± {s['r2_forest_all_se']:.3f}"
            f" / {s['r2_forest_selected_mean']:.3f} |",
            "| constructed formulas (seeds) | "
            + ", ".join(f"`{f}` ({n})" for f, n in list(s["formulas"].items())[:8])
            + " |",
        ]
    return "\n".join(rows)


def _load_details(path: str) -> list[dict[str, Any]]:
    """The per-seed records already in ``path`` (a missing file holds none)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+SEEDS-1 (default 0)")
    ap.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--cases", nargs="+", default=[f"{d}:{m}" for d, m in CASES] + ["friedman1"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument(
        "--tolerance", type=float, default=1.0, help="ours' score guard allowance in s.e. (default 1; one per file)"
    )
    ap.add_argument("--details", help="append one JSON line per seed and method to this file")
    ap.add_argument("--resume", action="store_true", help="skip the jobs already in --details and summarise all")
    ap.add_argument("--order", choices=("case", "seed"), default="case", help="run jobs case by case or seed by seed")
    ap.add_argument("--from", dest="from_", nargs="+", metavar="DETAILS", help="only summarise these details files")
    ap.add_argument("--markdown", action="store_true", help="print the tables for docs/benchmarks.md at the end")
    args = ap.parse_args(argv)
    if args.from_:
        summaries = summarise([r for path in args.from_ for r in _load_details(path)])
        for s in summaries:
            print(json.dumps(s, sort_keys=True), flush=True)
        if args.markdown:
            print(markdown(summaries))
        return 0
    if args.resume and not args.details:
        ap.error("--resume needs --details (the file of the interrupted run)")
    records = _load_details(args.details) if args.resume else []
    done = {(r["dataset"], r.get("model"), r["seed"], r.get("method")) for r in records}
    jobs: list[tuple] = []
    for case in args.cases:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if case == "friedman1":
                if ("friedman1", None, seed, None) not in done:
                    jobs.append(("friedman1", seed, args.tolerance))
                continue
            ds, model = case.split(":")
            todo = tuple(m for m in args.methods if (ds, model, seed, m) not in done)
            if todo:
                jobs.append((ds, model, seed, todo, args.tolerance))
    if args.order == "seed":  # every case gets its first seeds before any gets its later ones
        jobs.sort(key=lambda j: j[1] if j[0] == "friedman1" else j[2])
    print(f"{len(records)} records resumed, {len(jobs)} jobs to run", file=sys.stderr, flush=True)
    t0 = time.time()
    details = open(args.details, "a") if args.details else None  # noqa: SIM115
    try:
        if args.workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.workers) as pool:
                for recs in pool.imap_unordered(_task, jobs):
                    records += recs
                    if details:
                        details.writelines(json.dumps(r) + "\n" for r in recs)
                        details.flush()
        else:
            for job in jobs:
                recs = _task(job)
                records += recs
                if details:
                    details.writelines(json.dumps(r) + "\n" for r in recs)
                    details.flush()
    finally:
        if details:
            details.close()
    load = os.getloadavg()
    summaries = summarise(records)
    for s in summaries:
        s["load_avg_1_5_15"] = [round(x, 2) for x in load]
        s["wall_s"] = round(time.time() - t0, 1)  # of this invocation (a --resume adds to an earlier one)
        s["resumed"] = args.resume
        print(json.dumps(s, sort_keys=True), flush=True)
    if args.markdown:
        print(markdown(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
