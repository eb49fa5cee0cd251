"""The search loop: propose with a strategy, evaluate (in parallel), log every trial, resume.

A search directory holds ``search.json`` (the configuration) and ``trials.jsonl`` (one line per
evaluated model, see :mod:`openmindspore.automl.records`). Trials are proposed in batches of
``workers``: every proposal of a batch sees the history before the batch, and trial ``t`` draws its
decisions from ``default_rng([seed, t, 0])`` and trains with seed ``SeedSequence([seed, t, 1])``.
So a search is deterministic under its seed, and one resumed from its log (same ``workers``)
continues exactly as if it had not stopped. A trial that raises is logged ``"failed"`` with its
error and the search goes on; failed trials are never chosen as best nor as elites/parents.
With ``halving`` (multi-fidelity, :mod:`openmindspore.automl.halving`) the trials train at the lowest
budget and the best are re-evaluated at longer ones (``promotions.jsonl``); the best is chosen at the
highest budget reached.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.automl.halving import Promotion, halving_config, load_promotions, parse_halving, select, space_at
from openmindspore.automl.prior import build_prior
from openmindspore.automl.records import Trial
from openmindspore.automl.spaces import SearchSpace, make_space, space_cached
from openmindspore.automl.strategies import Strategy, make_strategy
from openmindspore.engine import tasks as _parallel
from openmindspore.errors import ConfigError

__all__ = ["SearchResult", "run_search", "load_trials", "trial_seed", "evaluate_payload"]

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """All trials in order, the configuration, the promotions of a multi-fidelity search (in schedule
    order), and the best successful trial (by validation score; with promotions, at the highest rung
    that has a successful one: the trial's record with that rung's score, metrics and budget)."""

    config: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)

    @property
    def best(self) -> Trial | None:
        ok_p = [p for p in self.promotions if p.ok]
        if ok_p:
            top = max(p.rung for p in ok_p)
            p = max((p for p in ok_p if p.rung == top), key=lambda p: (p.score, -p.trial))
            return dataclasses.replace(self.trials[p.promoted_from], score=p.score, metrics=p.metrics, budget=p.budget)
        ok = [t for t in self.trials if t.ok]
        return max(ok, key=lambda t: (t.score, -t.trial)) if ok else None

    @property
    def num_failed(self) -> int:
        return sum(t.status == "failed" for t in self.trials)


def trial_seed(seed: int, trial: int) -> int:
    """The training/evaluation seed of trial ``trial`` (uint32)."""
    return int(np.random.SeedSequence([seed, trial, 1]).generate_state(1)[0])


def _evaluate(space: SearchSpace, spec: Any, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        metrics = space.evaluate(spec, seed)
        score = float(metrics["val"][space.objective])
        if not math.isfinite(score):
            raise ValueError(f"validation {space.objective} is {score}")
        out = {"status": "ok", "metrics": metrics, "score": score, "error": None}
    except Exception as e:  # a crashing trial is logged, the search goes on
        log.warning("trial failed: %s: %s", type(e).__name__, e)
        out = {"status": "failed", "metrics": {}, "score": None, "error": f"{type(e).__name__}: {e}"}
    out["duration_s"] = time.perf_counter() - t0
    return out


def evaluate_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one trial in any process: ``{"space", "dataset", "options", "spec", "seed"}``."""
    space = space_cached(payload["space"], payload["dataset"], payload["options"])
    return _evaluate(space, payload["spec"], payload["seed"])


def load_trials(out_dir: str | Path, grammar=None) -> tuple[dict[str, Any], list[Trial]]:
    """Read ``search.json`` and ``trials.jsonl`` of a search directory."""
    d = Path(out_dir)
    cfg_path, log_path = d / "search.json", d / "trials.jsonl"
    if not cfg_path.is_file():
        raise ConfigError(
            "--out", str(out_dir), "a search directory (with search.json)", "run `oms search ... --out DIR` first"
        )
    config = json.loads(cfg_path.read_text())
    if grammar is None:
        grammar = make_space(config["space"], config["dataset"], **config.get("space_options", {})).grammar
    trials: list[Trial] = []
    if log_path.is_file():
        lines = log_path.read_text().splitlines()
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                trials.append(Trial.from_json(json.loads(line), grammar))
            except (json.JSONDecodeError, KeyError) as e:
                if n == len(lines) - 1:  # a crash while appending: the trial is evaluated again
                    log.warning("ignoring a truncated last line of %s", log_path)
                    break
                raise ConfigError(f"{log_path}:{n + 1}", line[:80], f"a trial record ({e})") from None
    if [t.trial for t in trials] != list(range(len(trials))):
        raise ConfigError(str(log_path), [t.trial for t in trials][:10], "trials numbered 0, 1, 2, ...")
    return config, trials


def _rewrite(path: Path, trials: list[Trial]) -> None:
    """Atomically replace ``path`` with exactly ``trials`` (used on resume)."""
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(t.to_json(), sort_keys=True) + "\n" for t in trials))
    tmp.replace(path)


def _evaluate_batch(sp: SearchSpace, items: list[tuple[Any, int]], workers: int, engine: str) -> list[dict]:
    """Evaluate ``(spec, seed)`` pairs on ``sp``: in-process, or as parallel engine tasks."""
    if workers == 1:
        return [_evaluate(sp, spec, seed) for spec, seed in items]
    payloads = [
        {"space": sp.name, "dataset": sp.dataset, "options": sp.options, "spec": spec, "seed": seed}
        for spec, seed in items
    ]
    return _parallel.parallel_map(evaluate_payload, payloads, workers, engine)


def _promote(
    sp: SearchSpace,
    hcfg: dict[str, Any],
    trials: list[Trial],
    out_dir: str | Path | None,
    resume: bool,
    workers: int,
    engine: str,
    on_trial: Callable[[Any], None] | None,
) -> list[Promotion]:
    """Successive halving's rungs 1.. after rung 0 (``trials``); logged promotions are reused."""
    path = None if out_dir is None else Path(out_dir) / "promotions.jsonl"
    cache: dict[tuple[int, int], Promotion] = {}
    if path is not None:
        logged = load_promotions(path.parent) if resume else []
        cache = {(p.rung, p.promoted_from): p for p in logged}
        path.write_text("".join(json.dumps(p.to_json(), sort_keys=True) + "\n" for p in logged))
    eta, n = hcfg["eta"], len(trials)
    scheduled: list[Promotion] = []
    prev: list[Any] = list(trials)
    for r in range(1, hcfg["rungs"]):
        chosen = select(prev, n // eta**r)
        todo = [i for i in chosen if (r, i) not in cache]
        spr = space_at(sp, hcfg["budgets"][r])
        for start in range(0, len(todo), workers):
            part = todo[start : start + workers]
            outs = _evaluate_batch(spr, [(trials[i].spec, trials[i].seed) for i in part], workers, engine)
            for i, out in zip(part, outs):
                p = Promotion(i, r, hcfg["budgets"][r], trials[i].spec, trials[i].seed)
                p.status, p.metrics, p.score = out["status"], out["metrics"], out["score"]
                p.error, p.duration_s = out["error"], out["duration_s"]
                cache[(r, i)] = p
                if path is not None:
                    with open(path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(p.to_json(), sort_keys=True) + "\n")
                if on_trial is not None:
                    on_trial(p)
        prev = [cache[(r, i)] for i in chosen]
        scheduled.extend(prev)
    return scheduled


RESUMABLE = ("workers", "engine")  # how a search runs, not what it computes: may change when it resumes


def run_search(
    space: str | SearchSpace,
    strategy: str = "markov",
    budget: int = 50,
    out_dir: str | Path | None = None,
    seed: int = 0,
    workers: int = 1,
    dataset: str | None = None,
    space_options: dict[str, Any] | None = None,
    strategy_options: dict[str, Any] | None = None,
    on_trial: Callable[[Any], None] | None = None,
    resume: bool = True,
    engine: str = "ray",
    prior: Sequence[str | Path] | None = None,
    halving: str | int | dict[str, Any] | None = None,
) -> SearchResult:
    """Run (or resume) a search of ``budget`` evaluations; returns all trials and the best.

    ``space`` is a name (built with ``dataset`` and ``space_options``) or a :class:`SearchSpace`
    (evaluated in-process; ``workers > 1`` needs a name so workers can rebuild it). With ``out_dir``
    every trial is appended to ``out_dir/trials.jsonl``; an existing log with the same configuration
    is resumed (more budget continues it), a different configuration is an error. ``engine`` runs the
    parallel evaluations (``ray`` or ``yuanrong``); like ``workers`` it is recorded but may change on resume.
    ``prior`` (markov only) warm-starts the chain from earlier search directories: their prior table
    (:mod:`openmindspore.automl.prior`) becomes the chain option ``warm``, stored in ``search.json``;
    resuming without ``prior`` reuses the stored table. ``halving`` (``"ETA[,RUNGS]"`` or
    ``{"eta", "rungs"}``) makes the search multi-fidelity (successive halving over the space's step
    budget, stored in ``search.json``; resuming without ``halving`` keeps the stored schedule);
    ``on_trial`` then also receives each :class:`Promotion`.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError("budget", budget, "an integer >= 1 (number of models to evaluate)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", workers, "an integer >= 1")
    space_options = dict(space_options or {})
    strategy_options = dict(strategy_options or {})
    sp = make_space(space, dataset, **space_options) if isinstance(space, str) else space
    if workers > 1 and not isinstance(space, str):
        raise ConfigError(
            "space", type(space).__name__, "a space name when workers > 1", "pass the name so workers can rebuild it"
        )
    if prior:
        if strategy != "markov":
            raise ConfigError("--prior", list(map(str, prior)), "--strategy markov (the chain is what a prior warms)")
        strategy_options["warm"] = build_prior(prior, sp.grammar)
    elif out_dir is not None and resume and (Path(out_dir) / "search.json").is_file():
        stored = json.loads((Path(out_dir) / "search.json").read_text()).get("strategy_options") or {}
        if "warm" in stored and "warm" not in strategy_options:
            strategy_options["warm"] = stored["warm"]  # resume rebuilds the same warm-started chain
    strat: Strategy = make_strategy(strategy, sp.grammar, **strategy_options)
    if halving is None and out_dir is not None and resume and (Path(out_dir) / "search.json").is_file():
        halving = json.loads((Path(out_dir) / "search.json").read_text()).get("halving")  # resume keeps it
    hparsed = parse_halving(halving)
    hcfg = None if hparsed is None else halving_config(hparsed, sp, budget)
    config = {
        "space": sp.name,
        "dataset": sp.dataset,
        "space_options": sp.options,
        "strategy": strategy,
        "strategy_options": strategy_options,
        "seed": int(seed),
        "workers": int(workers),
        "engine": engine,
        "objective": sp.objective,
    }
    if hcfg is not None:
        config["halving"] = hcfg
    trials: list[Trial] = []
    log_file = None
    if out_dir is not None:
        d = Path(out_dir)
        if (d / "search.json").is_file() and resume:
            old, trials = load_trials(d, sp.grammar)
            same = {k: old.get(k) for k in config if k not in RESUMABLE} == {
                k: v for k, v in config.items() if k not in RESUMABLE
            }
            if not same:
                diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
                raise ConfigError(
                    "--out",
                    str(d),
                    f"a search directory with the same configuration (differs in {diff})",
                    "choose another --out, or repeat the original options",
                )
            log.info("resuming %s from %d trials", d, len(trials))
            _rewrite(d / "trials.jsonl", trials)  # drops a truncated last line, if any
        elif (d / "trials.jsonl").is_file() and not resume:
            raise ConfigError("--out", str(d), "a new directory (it holds a search)", "choose another --out")
        d.mkdir(parents=True, exist_ok=True)
        (d / "search.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        log_file = open(d / "trials.jsonl", "a", encoding="utf-8")
    result = SearchResult(config, trials)
    sp0 = sp if hcfg is None else space_at(sp, hcfg["budgets"][0])
    try:
        while len(result.trials) < budget:
            start = len(result.trials)
            history = list(result.trials)
            batch: list[Trial] = []
            for t in range(start, min(start + workers, budget)):
                steps, path, parent = strat.propose(history, np.random.default_rng([seed, t, 0]))
                batch.append(
                    Trial(
                        trial=t,
                        strategy=strategy,
                        spec=sp.spec(path),
                        steps=steps,
                        path=path,
                        seed=trial_seed(seed, t),
                        parent=parent,
                        budget=None if hcfg is None else hcfg["budgets"][0],
                    )
                )
            outs = _evaluate_batch(sp0, [(tr.spec, tr.seed) for tr in batch], workers, engine)
            for tr, out in zip(batch, outs):
                tr.status, tr.metrics, tr.score = out["status"], out["metrics"], out["score"]
                tr.error, tr.duration_s = out["error"], out["duration_s"]
                result.trials.append(tr)
                if log_file is not None:
                    log_file.write(json.dumps(tr.to_json(), sort_keys=True) + "\n")
                    log_file.flush()
                if on_trial is not None:
                    on_trial(tr)
        if hcfg is not None:
            result.promotions = _promote(sp, hcfg, result.trials, out_dir, resume, workers, engine, on_trial)
    finally:
        if log_file is not None:
            log_file.close()
        if workers > 1:
            _parallel.shutdown()
    return result
