"""What ``oms features`` writes: owns the aggregation of per-seed results and the three output files.

* ``ranking.json``: per feature the marginal and conditional importance with 95% CIs and a status
  (``kept``, ``dropped``, ``proxy_of:X`` or ``constructed:FORMULA``), most important first;
* ``selected.json``: the selected features, the constructed formulas, feature counts and test scores;
* ``importance.png``: both importances with their CIs, coloured by status.

With several seeds, an importance is the mean over seeds of each seed's estimate and its ``ci95`` the
mean of the seeds' interval bounds; a status is the most frequent one (``statuses`` counts them all), a
feature is selected when kept in more than half of the seeds, and a formula when constructed in more
than half of them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.features.analysis import FeaturesConfig, SeedResult

__all__ = ["aggregate", "write_outputs"]


def _imp(values: list[tuple[float, float, float]]) -> dict[str, Any]:
    a = np.asarray(values, dtype=np.float64)
    return {"importance": float(a[:, 0].mean()), "ci95": [float(a[:, 1].mean()), float(a[:, 2].mean())]}


def aggregate(cfg: FeaturesConfig, results: list[SeedResult]) -> dict[str, dict[str, Any]]:
    """``{"ranking": ..., "selected": ...}`` (the contents of the two JSON files)."""
    r0 = results[0]
    k = len(results)
    rows = []
    for i, n in enumerate(r0.names):
        marg = [(r.marginal.mean[i], *r.marginal.ci[i]) for r in results]
        cond = [(r.conditional.mean[i], *r.conditional.ci[i]) for r in results]
        counts = Counter(r.status[n] for r in results)
        row: dict[str, Any] = {
            "name": n,
            "marginal": _imp(marg),
            "conditional": _imp(cond),
            "status": counts.most_common(1)[0][0],
            "proxy_of": Counter(r.proxies.get(n) for r in results).most_common(1)[0][0],
        }
        if k > 1:
            row["statuses"] = dict(counts)
        if cfg.select:
            row["kept_in"] = sum(n in r.kept for r in results)
        if r0.injection is not None and n in r0.injection.info:
            row["injected"] = r0.injection.info[n]
        rows.append(row)
    rows.sort(key=lambda row: -row["conditional"]["importance"])
    built: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for c in r.constructed:
            built.setdefault(c["name"], []).append(c)
    constructed: list[dict[str, Any]] = [
        {
            "name": f,
            "conditional": _imp([(c["importance"], *c["ci95"]) for c in cs]),
            "status": f"constructed:{f}",
            "found_in": len(cs),
        }
        for f, cs in sorted(built.items(), key=lambda kv: -len(kv[1]))
    ]
    info = {
        "dataset": cfg.dataset,
        "model": cfg.model or ("logreg" if r0.task == "classification" else "ridge"),
        "kind": cfg.kind,
        "task": r0.task,
        "loss": "log loss" if r0.task == "classification" else "squared error",
        "seeds": k,
        "repeats": cfg.repeats,
        "folds": cfg.folds,
        "tolerance": cfg.tolerance,
        "minimal": cfg.minimal,
    }
    selected = [row["name"] for row in rows if int(row.get("kept_in", k)) * 2 > k] if cfg.select else list(r0.names)
    formulas = [c["name"] for c in constructed if c["found_in"] * 2 > k]
    scores: dict[str, Any] = {}
    for key in ("all", "selected", "constructed"):
        vals = [r.scores[key] for r in results if key in r.scores]
        if vals:
            scores[key] = {"mean": float(np.mean(vals)), "per_seed": vals}
    out_sel = {
        **info,
        "metric": "accuracy" if r0.task == "classification" else "r2",
        "selected": selected,
        "constructed": formulas,
        "n_features": {"all": len(r0.names), "selected": len(selected), "constructed": len(selected) + len(formulas)},
        "test_scores": scores,
        "drops": [[d.name, round(d.importance, 6)] for d in r0.drops],
    }
    return {"ranking": {**info, "features": rows + constructed}, "selected": out_sel}


def _plot(ranking: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ranking["features"]
    n = len(rows)
    fig, ax = plt.subplots(figsize=(8, 0.32 * n + 1.4))
    yy = np.arange(n)[::-1]
    for off, key, colour in ((0.18, "marginal", "#9db4d6"), (-0.18, "conditional", "#1f4e8c")):
        vals = [r.get(key, {"importance": np.nan, "ci95": [np.nan, np.nan]}) for r in rows]
        mean = np.array([v["importance"] for v in vals])
        lo = np.array([v["ci95"][0] for v in vals])
        hi = np.array([v["ci95"][1] for v in vals])
        ax.barh(yy + off, mean, height=0.34, color=colour, label=key)
        ax.errorbar(mean, yy + off, xerr=[mean - lo, hi - mean], fmt="none", ecolor="black", lw=0.8, capsize=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(yy)
    labels = [f"{r['name']}  [{r['status']}]" for r in rows]
    ax.set_yticklabels(labels, fontsize=8)
    for t, r in zip(ax.get_yticklabels(), rows):
        st = r["status"]
        t.set_color("black" if st == "kept" else "#2e7d32" if st.startswith("constructed") else "#b23b3b")
    ax.set_xlabel(f"held-out {ranking['loss']} increase (95% CI)")
    ax.set_title(f"{ranking['dataset']} / {ranking['model']}: intervention importance ({ranking['seeds']} seed(s))")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out_dir: str | Path, agg: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Write ranking.json, selected.json and importance.png into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ranking": out / "ranking.json", "selected": out / "selected.json", "png": out / "importance.png"}
    paths["ranking"].write_text(json.dumps(agg["ranking"], indent=2) + "\n")
    paths["selected"].write_text(json.dumps(agg["selected"], indent=2) + "\n")
    _plot(agg["ranking"], paths["png"])
    return {k: str(v) for k, v in paths.items()}
