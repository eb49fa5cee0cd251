"""The summary of an active-learning run, computed from its seed states (what ``summary.json`` holds).

- ``full_pool_accuracy``: the same learner trained on the whole pool (mean over seeds);
- ``curve``: seed-mean test accuracy per label count (a seed that stopped early keeps its last model);
- ``labels_to_95pct_full`` / ``labels_to_99pct_full``: the first label count whose seed-mean accuracy
  reaches that share of ``full_pool_accuracy``, else null;
- ``labels_at_stop`` (median over seeds) and ``accuracy_at_stop`` (mean) where each seed ended;
- ``stopping``: for every rule, where it fires in each seed's recorded rounds (at the budget when it
  does not), compared with the seed's own labels-to-99%;
- ``abstention``: the final model's certificate, test coverage and selective accuracy, the uncorrected
  threshold's, and ECE before/after temperature scaling;
- ``per_seed``: the per-seed values behind all of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.active.config import ActiveConfig
from openmindspore.active.state import SeedState, load_run
from openmindspore.active.stopping import RULES, first_stop
from openmindspore.errors import ConfigError

__all__ = ["summarize", "load_states", "mean_curve", "first_reaching"]


def load_states(out: Path) -> tuple[ActiveConfig, list[SeedState]]:
    """The run's options and the seed states that exist so far."""
    run = load_run(Path(out))
    if run is None:
        raise ConfigError("--report", str(out), "a directory written by oms active (it has no state.json)")
    cfg = ActiveConfig(**run["config"])
    states = [SeedState.load(Path(out), s) for s in run["seeds"]]
    return cfg, [s for s in states if s is not None]


def mean_curve(states: list[SeedState]) -> dict[str, list[Any]]:
    """Seed-mean and standard error of test accuracy at every label count any seed reached."""
    counts = sorted({r["labels"] for s in states for r in s.rows})
    per = []
    for s in states:
        if not s.rows:
            continue
        labs = np.array([r["labels"] for r in s.rows])
        acc = np.array([r["accuracy"] for r in s.rows])
        per.append([float(acc[max(0, int(np.searchsorted(labs, n, side="right")) - 1)]) for n in counts])
    if not per:
        return {"labels": [], "accuracy_mean": [], "accuracy_se": []}
    a = np.array(per)
    se = a.std(axis=0, ddof=1) / np.sqrt(len(a)) if len(a) > 1 else np.zeros(a.shape[1])
    return {"labels": counts, "accuracy_mean": a.mean(axis=0).round(6).tolist(), "accuracy_se": se.round(6).tolist()}


def first_reaching(labels: Sequence[float], acc: Sequence[float], level: float) -> int | None:
    """The first label count whose accuracy reaches ``level`` (None if none)."""
    return next((int(n) for n, a in zip(labels, acc) if a >= level - 1e-12), None)


def _stopping(cfg: ActiveConfig, states: list[SeedState], full: float) -> dict[str, Any]:
    kw = {"kappa": cfg.kappa, "window": cfg.kappa_window, "max_uncertainty": cfg.max_uncertainty}
    l99 = [first_reaching([r["labels"] for r in s.rows], [r["accuracy"] for r in s.rows], 0.99 * full) for s in states]
    out: dict[str, Any] = {"labels_to_99pct_full_per_seed": l99}
    for rule in (*RULES, "budget"):
        fire = [None if rule == "budget" else first_stop(rule, s.rows, **kw) for s in states]
        at = [len(s.rows) - 1 if i is None else i for s, i in zip(states, fire)]  # not fired: the budget
        labels = [int(s.rows[i]["labels"]) for s, i in zip(states, at)]
        acc = [float(s.rows[i]["accuracy"]) for s, i in zip(states, at)]
        rel = [abs(n - t) / t for n, t in zip(labels, l99) if t is not None]
        ok = [a >= 0.98 * full for a in acc]
        out[rule] = {
            "fired": [i is not None for i in fire] if rule != "budget" else [True] * len(states),
            "labels": labels,
            "accuracy": acc,
            "median_rel_error_vs_99pct": float(np.median(rel)) if rel else None,
            "share_accuracy_ge_98pct_full": float(np.mean(ok)) if ok else None,
        }
    return out


def _abstention(cfg: ActiveConfig, states: list[SeedState]) -> dict[str, Any]:
    last = [s.rows[-1] for s in states if s.rows]
    if not last:
        return {}
    sel = [r["selective_accuracy"] for r in last]
    naive = [r["naive_selective_accuracy"] for r in last]
    t = cfg.target_accuracy
    return {
        "target": t,
        "delta": cfg.delta,
        "method": cfg.certify,
        "labels": [r["labels"] for r in last],
        "certified": [r["certified"] for r in last],
        "coverage": [r["coverage"] for r in last],
        "selective_accuracy": sel,
        "more_labels_needed": [r["more_labels_needed"] for r in last],
        "share_seeds_meeting_target": float(np.mean([a is not None and a >= t for a in sel])),
        "mean_coverage": float(np.mean([r["coverage"] for r in last])),
        "naive_coverage": [r["naive_coverage"] for r in last],
        "naive_selective_accuracy": naive,
        "naive_violation_rate": float(np.mean([a is not None and a < t for a in naive])),
        "ece_before": float(np.mean([r["ece_raw"] for r in last])),
        "ece_after": float(np.mean([r["ece"] for r in last])),
        "nll_before": float(np.mean([r["nll_raw"] for r in last])),
        "nll_after": float(np.mean([r["nll"] for r in last])),
    }


def summarize(out: Path) -> dict[str, Any]:
    """``summary.json`` of the run in ``out`` (finished or not)."""
    cfg, states = load_states(out)
    fulls = [s.full_pool_accuracy for s in states if s.full_pool_accuracy is not None]
    full = float(np.mean(fulls)) if fulls else float("nan")
    curve = mean_curve(states)
    done = [s for s in states if s.rows]
    status = "done" if states and all(s.status == "done" for s in states) else "running"
    if any(s.status == "waiting" for s in states):
        status = "waiting"
    return {
        "out": str(out),
        "config": cfg.model_dump(),
        "status": status,
        "seeds": [s.seed for s in states],
        "full_pool_accuracy": full,
        "labels_to_95pct_full": first_reaching(curve["labels"], curve["accuracy_mean"], 0.95 * full),
        "labels_to_99pct_full": first_reaching(curve["labels"], curve["accuracy_mean"], 0.99 * full),
        "labels_at_stop": int(np.median([s.rows[-1]["labels"] for s in done])) if done else None,
        "accuracy_at_stop": float(np.mean([s.rows[-1]["accuracy"] for s in done])) if done else None,
        "curve": curve,
        "stopping": _stopping(cfg, done, full),
        "abstention": _abstention(cfg, done),
        "seconds_per_round": float(np.mean([r["seconds"] for s in done for r in s.rows])) if done else None,
        "per_seed": [
            {
                "seed": s.seed,
                "status": s.status,
                "stopped_by": s.stopped_by,
                "full_pool_accuracy": s.full_pool_accuracy,
                "labels_at_stop": s.rows[-1]["labels"] if s.rows else None,
                "accuracy_at_stop": s.rows[-1]["accuracy"] if s.rows else None,
                "pending": len(s.pending),
            }
            for s in states
        ],
    }
