"""Randomized factorial ablation: train every cell of a 2^F design R times, estimate effects with CIs.

Design: the cells are all on/off combinations of the factors (see :mod:`openmindspore.causal.factors`),
each trained ``repeats`` times. Repeat ``r`` uses the same training seed in every cell (model
init, data order: common random numbers), so repeats are blocks. The run order is a random
permutation (seeded) and runs are trained in parallel on the engine (``workers`` Ray tasks), with
real MindSpore training (:func:`openmindspore.train.train`). Every finished run is appended to
``OUT/runs.jsonl``, so an interrupted ablation resumes where it stopped.

Analysis (:func:`analyze`): ordinary least squares of the metric on cell indicators plus repeat
(block) indicators; the main effect of a factor is the contrast "mean over cells with it on minus
mean with it off" (other factors averaged over both levels), the interaction ``a x b`` is "the
effect of a when b is on minus its effect when b is off". Standard errors come from the residual
variance, CIs from Student's t with the residual degrees of freedom.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from openmindspore.causal.factors import Factor, apply_levels, get_factor
from openmindspore.errors import ConfigError

__all__ = ["design", "run_ablation", "analyze", "load_base", "train_payload", "DEFAULT_TRAIN"]

log = logging.getLogger(__name__)
#: Training of every cell (the cnn search space's default budget).
DEFAULT_TRAIN: dict[str, Any] = {"steps": 300, "batch_size": 64, "lr": 1e-3, "optimizer": "adam"}


def load_base(base: str) -> tuple[list[dict], dict[str, Any]]:
    """The base layer spec and train settings from ``default`` (DEFAULT_CNN), a JSON/YAML file holding a
    layer list or a train config, a run directory (``config.yaml``) or a search directory (best trial)."""
    from openmindspore.models.cnn import DEFAULT_CNN

    if base in ("default", "DEFAULT_CNN"):
        return [dict(x) for x in DEFAULT_CNN], {}
    p = Path(base)
    if p.is_dir():
        if (p / "trials.jsonl").is_file():
            rows = [json.loads(ln) for ln in (p / "trials.jsonl").read_text().splitlines() if ln.strip()]
            ok = [r for r in rows if r.get("status") == "ok" and r.get("score") is not None]
            if not ok:
                raise ConfigError("--base", base, "a search directory with a successful trial")
            return list(max(ok, key=lambda r: r["score"])["spec"]), {}
        p = p / "config.yaml"
    if not p.is_file():
        raise ConfigError(
            "--base",
            base,
            "'default', a layer-spec JSON/YAML file, a run directory or a search directory",
            "e.g. --base default",
        )
    import yaml

    data = yaml.safe_load(p.read_text())
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        layers = data["model"].get("layers") or [dict(x) for x in DEFAULT_CNN]
        opts = {k: data[k] for k in ("dataset", "batch_size") if k in data}
        if isinstance(opts.get("dataset"), dict):  # the user's files: paths relative to that config
            from openmindspore.data import parse_dataset

            opts["dataset"] = parse_dataset(opts["dataset"], base_dir=p.resolve().parent)
        return list(layers), opts
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if not isinstance(data, list) or not all(isinstance(x, dict) and "type" in x for x in data):
        raise ConfigError("--base", base, "a list of CNN layer specs ({type: conv, ...})")
    return data, {}


def design(factors: Sequence[Factor], repeats: int, seed: int) -> list[dict[str, Any]]:
    """All runs ``{"run", "cell", "levels", "repeat", "seed"}`` in randomized order."""
    if repeats < 2:
        raise ConfigError("--repeats", repeats, "an integer >= 2 (the error variance needs replicates)")
    seeds = [int(np.random.SeedSequence([seed, r]).generate_state(1)[0] % (2**31)) for r in range(repeats)]
    cells = list(itertools.product((0, 1), repeat=len(factors)))
    runs = [
        {"cell": c, "levels": list(lv), "repeat": r, "seed": seeds[r]}
        for c, lv in enumerate(cells)
        for r in range(repeats)
    ]
    order = np.random.default_rng(seed).permutation(len(runs))
    return [{"run": int(k), **runs[k]} for k in order]


def train_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one cell (any process) in a fresh interpreter: ``{"config": TrainConfig dict}`` -> metrics or
    the error. A crashed process is retried ``payload.get("retries", 1)`` times (``"attempts"`` records it)."""
    from openmindspore.train.isolated import train_isolated

    return train_isolated(
        payload["config"], retries=int(payload.get("retries", 1)), timeout_s=float(payload.get("timeout_s", 7200))
    )


def _metric(row: dict[str, Any], metric: str) -> float | None:
    split, _, name = metric.partition(".")
    v = (row.get("metrics", {}).get(split) or {}).get(name)
    return None if v is None else float(v)


def analyze(
    rows: Sequence[dict[str, Any]],
    factor_names: Sequence[str],
    metric: str = "test.accuracy",
    interactions: bool = True,
) -> list[dict[str, Any]]:
    """Main effects (and pairwise interactions) with t-based 95% CIs from finished runs."""
    F = len(factor_names)
    ok = [r for r in rows if r.get("status") == "ok" and _metric(r, metric) is not None]
    cells = list(itertools.product((0, 1), repeat=F))
    C = len(cells)
    reps = sorted({r["repeat"] for r in ok})
    y = np.array([_metric(r, metric) for r in ok])
    X = np.zeros((len(ok), C + max(len(reps) - 1, 0)))
    for i, r in enumerate(ok):
        X[i, cells.index(tuple(r["levels"]))] = 1.0
        k = reps.index(r["repeat"])
        if k > 0:
            X[i, C + k - 1] = 1.0
    present = X[:, :C].sum(0)
    if (present == 0).any():
        missing = [dict(zip(factor_names, cells[c])) for c in np.flatnonzero(present == 0)]
        raise ConfigError(
            "ablation",
            f"{len(ok)} ok runs",
            f"at least one successful run per cell (missing: {missing})",
            "see the failed runs' errors in runs.jsonl",
        )
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    df = len(ok) - rank
    if df < 1:
        raise ConfigError("--repeats", len(reps), "enough successful replicates for an error estimate (df >= 1)")
    sigma2 = float(((y - X @ beta) ** 2).sum() / df)
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    t975 = float(stats.t.ppf(0.975, df))
    signs = np.array([[1.0 if lv else -1.0 for lv in c] for c in cells])  # [C, F]
    contrasts: list[tuple[str, np.ndarray]] = [(f, signs[:, j] / 2 ** (F - 1)) for j, f in enumerate(factor_names)]
    if interactions and F >= 2:
        for a, b in itertools.combinations(range(F), 2):
            contrasts.append((f"{factor_names[a]} x {factor_names[b]}", signs[:, a] * signs[:, b] / 2 ** (F - 2)))
    out = []
    for name, c in contrasts:
        L = np.concatenate([c, np.zeros(X.shape[1] - C)])
        ate, se = float(L @ beta), float(np.sqrt(L @ cov @ L))
        out.append(
            {
                "treatment": name,
                "metric": metric,
                "estimator": "factorial",
                "ate": ate,
                "ci95": [ate - t975 * se, ate + t975 * se],
                "se": se,
                "n": len(ok),
                "ess": float(len(ok)),
                "df": int(df),
            }
        )
    return out


def run_ablation(
    base: list[dict],
    factor_names: Sequence[str],
    repeats: int,
    out_dir: str | Path,
    dataset: str | dict[str, Any] = "mnist5k",
    steps: int = 300,
    workers: int = 1,
    seed: int = 0,
    train_opts: dict[str, Any] | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
    engine: str = "ray",
) -> dict[str, Any]:
    """Run (or resume) the ablation into ``out_dir``; returns ``{"config", "runs"}``. ``engine`` (``ray`` or
    ``yuanrong``) runs the parallel trainings; it is recorded but may change when the ablation resumes."""
    from openmindspore.data import load_dataset
    from openmindspore.engine import tasks
    from openmindspore.models.cnn import validate_spec

    if len(set(factor_names)) != len(factor_names) or not factor_names:
        raise ConfigError("--factor", list(factor_names), "one or more distinct factors")
    factors = [get_factor(f) for f in factor_names]
    if steps < 1 or workers < 1:
        raise ConfigError("--steps/--workers", (steps, workers), "integers >= 1")
    ds = load_dataset(dataset)
    opts = {**DEFAULT_TRAIN, **(train_opts or {}), "steps": int(steps)}
    runs = design(factors, repeats, seed)
    for r in runs:  # fail fast, before any training, naming the cell
        r["spec"] = apply_levels(base, factors, tuple(r["levels"]))
        try:
            validate_spec(r["spec"], ds.input_shape, ds.num_classes)
        except ConfigError as e:
            raise ConfigError(
                "--factor",
                dict(zip(factor_names, r["levels"])),
                f"a valid model in every cell ({e})",
                "drop that factor or change --base",
            ) from None
        r["config"] = {
            "dataset": dataset,
            "model": {"name": "cnn", "layers": r["spec"]},
            "optimizer": {"name": opts["optimizer"], "lr": float(opts["lr"])},
            "batch_size": int(opts["batch_size"]),
            "steps": int(opts["steps"]),
            "seed": r["seed"],
        }
    config = {
        "base": base,
        "factors": list(factor_names),
        "repeats": repeats,
        "dataset": dataset,
        "train": opts,
        "seed": seed,
        "order": [r["run"] for r in runs],
    }
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    cfg_path, log_path = d / "ablation.json", d / "runs.jsonl"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if {k: v for k, v in old.items() if k not in ("workers", "engine")} != config:
            raise ConfigError(
                "--out",
                str(d),
                "a new directory or one holding the same ablation",
                "choose another --out, or repeat the original options",
            )
    cfg_path.write_text(json.dumps({**config, "engine": engine}, indent=2, sort_keys=True) + "\n")
    done = {}
    if log_path.is_file():
        for ln in log_path.read_text().splitlines():
            if ln.strip():
                try:
                    row = json.loads(ln)
                    done[row["run"]] = row
                except json.JSONDecodeError:
                    pass
    todo = [r for r in runs if r["run"] not in done]
    try:
        with open(log_path, "a", encoding="utf-8") as fh:
            for i in range(0, len(todo), workers):
                batch = todo[i : i + workers]
                outs = tasks.parallel_map(train_payload, [{"config": r["config"]} for r in batch], workers, engine)
                for r, o in zip(batch, outs):
                    row = {k: r[k] for k in ("run", "cell", "levels", "repeat", "seed", "spec")}
                    row.update(o)
                    row["factors"] = dict(zip(factor_names, r["levels"]))
                    fh.write(json.dumps(row, sort_keys=True) + "\n")
                    fh.flush()
                    done[r["run"]] = row
                    if on_run is not None:
                        on_run(row)
    finally:
        if workers > 1:
            tasks.shutdown()
    return {"config": config, "runs": [done[r["run"]] for r in runs]}
