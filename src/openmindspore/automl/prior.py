"""Warm start from experience: the prior a Markov chain starts from, built from earlier searches' logs.

Owns the *prior table*: ``{"probs": {state: {choice: p}}, "counts": {state: {choice: c}},
"sources": [...]}``. For every source search directory (``search.json`` + ``trials.jsonl``) the
elite of its successful trials (top ``elite_frac`` of the distinct models by mean score, at least
``min_elite``, log-rank weights summing to the elite's size, as the chain's own cross-entropy rule)
adds its decisions to ``counts``. ``probs`` is ``counts`` smoothed with 0.5 pseudo-counts per choice
and normalised. Only the *shared states* count: a state of the target grammar with the same name,
matched by choice id (a source over another space or dataset transfers what the grammars share).

The table is plain JSON and is stored in ``search.json`` (``strategy_options.warm``), so a resumed
search and the causal replay rebuild the same chain without the source logs (see
:class:`~openmindspore.automl.chain.MarkovChain` for how the chain weighs it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.automl.grammar import Grammar
from openmindspore.errors import ConfigError

__all__ = ["agreement", "build_prior", "prior_from_results", "prior_weight", "prior_summary", "check_prior"]


def prior_from_results(
    grammar: Grammar,
    sources: Sequence[Sequence[tuple[Sequence[tuple[str, str]], float | None]]],
    elite_frac: float = 0.2,
    min_elite: int = 3,
    smoothing: float = 0.5,
) -> dict[str, Any]:
    """The prior table from ``sources``: per source, ``[(decisions [(state, choice id)], score)]``."""
    counts = {s: {c.id: 0.0 for c in st.choices} for s, st in grammar.states.items()}
    for results in sources:
        groups: dict[tuple, list[float]] = {}
        for path, score in results:
            if score is not None and math.isfinite(score):
                groups.setdefault(tuple((s, c) for s, c in path), []).append(float(score))
        if not groups:
            continue
        ranked = sorted(groups.items(), key=lambda kv: -float(np.mean(kv[1])))
        k = min(len(ranked), max(min_elite, int(math.ceil(elite_frac * len(ranked)))))
        w = np.log(k + 1.0) - np.log(np.arange(1, k + 1))
        w = w * (k / w.sum())  # the elite weighs k in all, as in the chain's own rule
        for rank, (path, _) in enumerate(ranked[:k]):
            for state, cid in path:
                if state in counts and cid in counts[state]:
                    counts[state][cid] += float(w[rank])
    probs = {}
    for state, row in counts.items():
        if sum(row.values()) > 0:
            z = sum(row.values()) + smoothing * len(row)
            probs[state] = {cid: (v + smoothing) / z for cid, v in row.items()}
    return {
        "probs": probs,
        "counts": {s: {c: round(v, 12) for c, v in row.items()} for s, row in counts.items() if s in probs},
    }


def build_prior(dirs: Sequence[str | Path], grammar: Grammar) -> dict[str, Any]:
    """The prior table from earlier search directories (their ``search.json`` and ``trials.jsonl``)."""
    if not dirs:
        raise ConfigError("--prior", list(dirs), "one or more search directories")
    sources, info = [], []
    for d in dirs:
        p = Path(d)
        cfg_path, log_path = p / "search.json", p / "trials.jsonl"
        if not cfg_path.is_file() or not log_path.is_file():
            raise ConfigError(
                "--prior", str(d), "a search directory (search.json + trials.jsonl)", "run oms search first"
            )
        cfg = json.loads(cfg_path.read_text())
        results = []
        for line in log_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line
            if rec.get("status") == "ok":
                results.append(([(s["state"], s["choice"]) for s in rec["steps"]], rec.get("score")))
        shared = {s for path, _ in results for s, _ in path} & set(grammar.states)
        if not shared:
            raise ConfigError(
                "--prior",
                str(d),
                f"a search sharing states with grammar {grammar.name!r} (it has none of {sorted(grammar.states)})",
                "use searches over the same space",
            )
        sources.append(results)
        info.append({"dir": str(d), "space": cfg.get("space"), "dataset": cfg.get("dataset"), "ok": len(results)})
    table = prior_from_results(grammar, sources)
    table["sources"] = info
    return table


def prior_weight(config: dict[str, Any], trials: Sequence[Any], grammar: Grammar) -> float | None:
    """The prior's weight ``lambda`` after ``trials`` (the log of a markov search with a prior), as the chain
    computes it for its next proposal (it rebuilds the chain from ``config`` as resume does); None without a prior.
    1 while the prior is trusted; it falls towards 0 as this task's results disagree with it."""
    opts = config.get("strategy_options") or {}
    if config.get("strategy") != "markov" or not opts.get("warm"):
        return None
    from openmindspore.automl.strategies import MarkovSearch

    chain = MarkovSearch(grammar, **opts).chain
    chain.fit((t.path, t.score if t.ok else None) for t in trials)
    return float(chain.warm_weight)


def prior_summary(
    config: dict[str, Any], trials: Sequence[Any], grammar: Grammar | None = None
) -> dict[str, Any] | None:
    """``{"searches": n, "weight": lambda, "text": one line}`` for a warm-started markov search, else None
    (``grammar``: the search's, built from ``config`` when not given and only for a search with a prior)."""
    if not (config.get("strategy_options") or {}).get("warm"):
        return None
    if grammar is None:
        from openmindspore.automl.spaces import make_space

        grammar = make_space(config["space"], config["dataset"], **config.get("space_options", {})).grammar
    w = prior_weight(config, trials, grammar)
    if w is None:
        return None
    n = len(config["strategy_options"]["warm"].get("sources") or [])
    verdict = "trusted" if w >= 0.5 else "this task's results disagree with it" if w == 0 else "partly trusted"
    text = f"prior: {n} earlier search{'es' if n != 1 else ''}, weight now {w:.2f} ({verdict})"
    return {"searches": n, "weight": round(w, 4), "text": text}


def check_prior(table: Any, grammar: Grammar) -> dict[str, np.ndarray]:
    """Validate a stored table; returns ``{state: probs over the state's choices}`` (shared states only)."""
    if not isinstance(table, dict) or not isinstance(table.get("probs"), dict):
        raise ConfigError("chain.warm", table, "a prior table {'probs': {state: {choice: p}}, ...}", "use --prior DIR")
    out = {}
    for state, row in table["probs"].items():
        if state not in grammar.states or not isinstance(row, dict):
            continue
        v = np.array([float(row.get(c.id, 0.0)) for c in grammar.states[state].choices])
        if (v < 0).any() or not np.isfinite(v).all():
            raise ConfigError(f"chain.warm.probs[{state!r}]", row, "non-negative probabilities")
        if v.sum() > 0:
            out[state] = v / v.sum()
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), for Spearman's correlation."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def agreement(
    warm: dict[str, np.ndarray], ok: Sequence[tuple[Sequence[tuple[str, int]], float]], trust: float
) -> float:
    """``lambda``, the prior's weight given the task's successful results ``ok`` so far (see
    :class:`~openmindspore.automl.chain.MarkovChain`): with ``n`` distinct models and ``rho`` the
    Spearman correlation of their mean scores with their log-probability under ``warm``,
    ``a = clip(2 rho, 0, 1)`` and ``lambda = ((trust - n) + n a) / trust`` while ``n < trust``
    (1 until ``n >= 3``), ``a`` after."""
    groups: dict[tuple, list[float]] = {}
    for path, s in ok:
        groups.setdefault(tuple(path), []).append(s)
    n = len(groups)
    if n < 3:
        return 1.0
    y = np.array([np.mean(v) for v in groups.values()])
    lp = np.array([sum(math.log(warm[s][i]) for s, i in path if s in warm) for path in groups])
    if np.ptp(y) == 0 or np.ptp(lp) == 0:
        rho = 0.0
    else:
        rho = float(np.corrcoef(_ranks(y), _ranks(lp))[0, 1])
    a = min(1.0, max(0.0, 2.0 * rho))
    return float(a if n >= trust else ((trust - n) + n * a) / trust)
