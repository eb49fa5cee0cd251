"""Local moves of the Markov chain: a neighbour of the incumbent, as per-state distributions.

A *local trial* (``ChainConfig.local``) does not sample from the learned tables ``q`` but from
tables conditioned on the *incumbent* (a good model found so far): every state the incumbent visits
once keeps the incumbent's choice (``q`` is one-hot there) except one state, the *moved* one, where
``q`` is the learned distribution restricted to the choices that lead to a neighbour not evaluated
yet. The chain's floor and grammar mask are applied on top as for any trial
(``p = (1 - K eps) q + eps``), so the move is still a product of per-decision distributions, every
allowed choice keeps probability >= epsilon, and the logged propensities are the probabilities
actually used. Which trials are local is a deterministic schedule of the trial count, and the
incumbent and the moved state are deterministic functions of the results: the chain stays a pure
function of the results (resume and the causal replay rebuild it exactly).

Incumbent: the distinct models ranked by the mean of their evaluations (ties: the earliest), the
best one that still has an unevaluated neighbour among the top ``local_top``. Moved state: the one
whose unevaluated alternatives carry the most learned mass ``q`` (ties: the earliest state).

*Re-evaluation trials* (``ChainConfig.intensify``) race the best models found so far, as a noisy
search needs: one-hot tables on one of the ``top`` best models by mean over all trials, the one with the
largest ``mean + c * sd / sqrt(evaluations)`` (``sd`` pooled within the models evaluated more than once, 0
before any; ties: the better mean). A lucky single score is checked (its mean falls back and local moves
leave it), a good model gets more evaluations. Floor and mask apply on top as for a local move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from openmindspore.automl.grammar import Grammar

__all__ = [
    "intensify_tables",
    "is_local_trial",
    "local_tables",
    "neighbours",
    "one_hot_tables",
    "rank_models",
    "run_start",
]


def is_local_trial(n: int, warmup: int, local: float) -> bool:
    """Whether trial ``n`` (0-based, = number of results before it) is a local move: after
    ``warmup``, a fraction ``local`` of the trials, evenly spread (``local = 0.5``: every other one)."""
    if local <= 0.0 or n < max(warmup, 1):
        return False
    k = n - max(warmup, 1)
    return math.floor((k + 1) * local + 1e-9) > math.floor(k * local + 1e-9)


def run_start(n: int, restart: int) -> int:
    """The first trial of the run that trial ``n`` (0-based) belongs to when the chain restarts
    (``ChainConfig.restart``): runs of ``restart``, ``2 restart``, ``4 restart``, ... trials, each learning
    only from its own results (0: one run)."""
    if restart <= 0:
        return 0
    start, length = 0, restart
    while n >= start + length:
        start, length = start + length, 2 * length
    return start


def rank_models(ok: Sequence[tuple[Sequence[tuple[str, int]], float]]) -> list[tuple[tuple, float, int]]:
    """Distinct models ``(path, mean score, evaluations)``, best mean first (ties: earliest seen)."""
    groups: dict[tuple, list[float]] = {}
    for path, s in ok:
        groups.setdefault(tuple(path), []).append(s)
    models = [(path, float(np.mean(v)), len(v)) for path, v in groups.items()]
    return sorted(models, key=lambda m: -m[1])  # stable: the earliest seen wins ties


def local_tables(
    grammar: Grammar,
    ok: Sequence[tuple[Sequence[tuple[str, int]], float]],
    q: dict[str, np.ndarray],
    top: int = 3,
) -> dict[str, np.ndarray]:
    """Per-state tables of a move to an unevaluated neighbour of an incumbent (module docstring);
    ``{}`` when none of the ``top`` best models has one (the trial then samples the chain)."""
    ranked = rank_models(ok)
    seen = {path for path, _, _ in ranked}
    for inc, _, _ in ranked[:top]:
        states = [s for s, _ in inc]
        once = [j for j, s in enumerate(states) if states.count(s) == 1]
        by_state: dict[int, list[int]] = {}  # decision index -> its unevaluated alternatives
        for j, a, path in _moves(grammar, inc):
            if path not in seen:
                by_state.setdefault(j, []).append(a)
        best: tuple[float, int, list[int]] | None = None
        for j, fresh in by_state.items():
            mass = float(sum(q[inc[j][0]][a] for a in fresh))
            if best is None or mass > best[0]:
                best = (mass, j, fresh)
        if best is None:
            continue
        _, moved, fresh = best
        tables: dict[str, np.ndarray] = {}
        for j in once:
            state, i = inc[j]
            t = np.zeros(len(q[state]))
            if j == moved:
                t[fresh] = q[state][fresh] if q[state][fresh].sum() > 0 else 1.0
                t = t / t.sum()
            else:
                t[i] = 1.0
            tables[state] = t
        return tables
    return {}


def _moves(grammar: Grammar, inc: Sequence[tuple[str, int]]) -> list[tuple[int, int, tuple]]:
    """``(j, a, path)`` for every model one decision away from ``inc``: decision ``j`` (a state it visits once)
    moved to another allowed choice ``a``, in walk order."""
    states = [s for s, _ in inc]
    used: dict[str, int] = {}
    out = []
    for j, (state, i) in enumerate(inc):
        if states.count(state) == 1:
            head, tail = tuple(inc[:j]), tuple(inc[j + 1 :])
            out += [(j, a, head + ((state, a),) + tail) for a in grammar.allowed(state, used) if a != i]
        for cn in grammar.choice(state, i).count:
            used[cn] = used.get(cn, 0) + 1
    return out


def neighbours(grammar: Grammar, inc: Sequence[tuple[str, int]]) -> list[tuple]:
    """The models one decision away from ``inc`` (a state it visits once moved to another allowed choice)."""
    return [path for _, _, path in _moves(grammar, inc)]


def intensify_tables(
    grammar: Grammar, ok: Sequence[tuple[Sequence[tuple[str, int]], float]], top: int, c: float
) -> dict[str, np.ndarray]:
    """One-hot tables on the model a re-evaluation trial races (module docstring); only the states the
    model visits once are pinned (elsewhere the trial samples the learned tables)."""
    groups: dict[tuple, list[float]] = {}
    for path, s in ok:
        groups.setdefault(tuple(path), []).append(s)
    rep = [v for v in groups.values() if len(v) > 1]
    dof = sum(len(v) - 1 for v in rep)
    sd = math.sqrt(sum(float(np.var(v)) * len(v) for v in rep) / dof) if dof else 0.0
    ranked = rank_models(ok)[:top]
    pick = max(ranked, key=lambda m: m[1] + c * sd / math.sqrt(m[2]))[0]  # first max: the better mean
    return one_hot_tables(grammar, pick)


def one_hot_tables(grammar: Grammar, path: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
    """One-hot tables on ``path``'s decisions at the states it visits once (a state visited more than once
    cannot be pinned by one table: there the trial samples the learned tables)."""
    states = [s for s, _ in path]
    tables: dict[str, np.ndarray] = {}
    for state, i in path:
        if states.count(state) == 1:
            tables[state] = np.zeros(grammar.num_choices[state])
            tables[state][i] = 1.0
    return tables
