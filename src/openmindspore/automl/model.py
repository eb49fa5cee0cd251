"""Model-based global proposals of the Markov chain: a surrogate picks the next model to evaluate.

A *model trial* (``ChainConfig.model``) replaces one of the chain's global samples (the trials that
are not local moves) by the candidate a surrogate of the results finds most promising:

1. ``model_candidates`` walks are drawn from the chain's own sampling distribution (floor and mask
   included; a share ``model_uniform`` of them from the grammar's uniform walk instead, so the
   candidates also reach basins the learned ``q`` has left), with a generator seeded by the results
   (:func:`candidate_seed`); duplicates and models already evaluated are dropped.
2. The surrogate is a Gaussian process on the decisions (``a``: one count per (state, choice);
   kernel ``w cos(a, b) + (1 - w) exp(-theta |a - b|^2 / 2)``: an additive part, the share of
   decisions two models have in common, and an interaction part, for a fixed-length grammar such
   as NB201 ``exp(-theta * Hamming distance)``), fitted to the successful results with scores
   clipped from below at their ``model_clip`` quantile (broken models do not dominate the fit) and
   standardised; ``w``, ``theta`` and the noise variance are chosen on a fixed grid by the
   marginal likelihood.
3. The candidate with the largest acquisition is proposed (ties: the first drawn): ``model_acq``
   ``ucb`` (the default), ``mean + model_kappa * sd``; ``ei``, the expected improvement over the
   largest posterior mean at the evaluated models (``model_kappa`` unused).

The trial samples from one-hot tables on the chosen candidate's decisions (states visited once; a
state visited several times keeps the learned ``q``), with the chain's floor and grammar mask on top
as for any trial: a product of per-state distributions, every allowed choice keeps probability
>= epsilon, and the logged ``probs`` are the probabilities used. Which trials are model trials is a
fixed schedule of the trial count, the candidates' generator is seeded by the results, and the fit
is deterministic: the chain stays a pure function of the results, so resume and the causal replay
(``oms effects``) rebuild every model trial exactly (on the same numerical libraries: a different
BLAS could break a near-tie of two candidates' scores differently).

The same surrogate can pick the *local moves* (``ChainConfig.local_pick = "model"``,
:func:`local_model_tables`): the candidates are then the unevaluated neighbours of the ``local_top``
best models (one decision changed), and the trial takes the one with the largest acquisition, as
one-hot tables with the floor and mask on top. The default local move (``"mass"``) changes the state
whose unevaluated alternatives carry the most learned mass, so it rarely moves a decision the elite
agrees on, even when the best model is one such move away.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtr

from openmindspore.automl.grammar import Grammar
from openmindspore.automl.local import is_local_trial, neighbours, one_hot_tables, rank_models

__all__ = [
    "is_model_trial",
    "candidate_seed",
    "features",
    "gp_scores",
    "local_model_tables",
    "model_tables",
    "product_order",
    "draw_walks",
]

_ADDITIVE = (0.0, 0.5, 1.0)  # weight of the additive kernel (the rest: exp(-theta * distance))
_THETAS = (0.25, 0.5, 1.0, 2.0)
_NOISES = (0.02, 0.1, 0.3)

Path = tuple[tuple[str, int], ...]


def is_model_trial(n: int, start: int, share: float, local_start: int, local: float) -> bool:
    """Whether trial ``n`` (0-based) is a model trial: from ``start`` on, a fraction ``share`` of
    the trials that are not local moves (``is_local_trial(., local_start, local)``), evenly spread."""
    if share <= 0.0 or n < max(start, 1) or is_local_trial(n, local_start, local):
        return False
    k = sum(not is_local_trial(m, local_start, local) for m in range(max(start, 1), n))
    return math.floor((k + 1) * share + 1e-9) > math.floor(k * share + 1e-9)


def candidate_seed(ok: Sequence[tuple[Sequence[tuple[str, int]], float]], n: int) -> list[int]:
    """Seed of the candidates' generator: a function of the trial count and the results only."""
    h = zlib.crc32(np.asarray([s for _, s in ok], dtype=np.float64).tobytes())
    h = zlib.crc32(repr([tuple(p) for p, _ in ok]).encode(), h)
    return [n, h]


def product_order(grammar: Grammar) -> list[str] | None:
    """The states of a product grammar in walk order (every walk visits them all, once, no
    counters: NB201's six edges), else ``None``."""
    order: list[str] = []
    state: str | None = grammar.start
    while state is not None:
        choices = grammar.states[state].choices
        if state in order or any(c.count for c in choices) or len({c.next for c in choices}) != 1:
            return None
        order.append(state)
        state = choices[0].next
    return order


def draw_walks(
    grammar: Grammar,
    probs: Callable[[str, str, dict[str, int]], np.ndarray],
    first_order: bool,
    rng: np.random.Generator,
    n: int,
    uniform: float,
) -> list[Path]:
    """``n`` walks: the first ``round(n * uniform)`` uniform over the allowed choices, the rest from
    ``probs`` (vectorised when the grammar is a product and ``first_order``)."""
    n_u = int(round(n * uniform))
    order = product_order(grammar) if first_order else None
    if order is not None:
        cols = []
        for s in order:
            k = grammar.num_choices[s]
            uni = np.zeros(k)
            uni[grammar.allowed(s, {})] = 1.0
            u = rng.random(n)
            lo = np.searchsorted(np.cumsum(uni / uni.sum()), u[:n_u], side="right")
            hi = np.searchsorted(np.cumsum(probs(s, "^", {})), u[n_u:], side="right")
            cols.append(np.minimum(np.concatenate([lo, hi]), k - 1))
        return [tuple(zip(order, map(int, row))) for row in np.stack(cols, 1)]
    walks = []
    for j in range(n):
        state: str | None = grammar.start
        used: dict[str, int] = {}
        path: list[tuple[str, int]] = []
        while state is not None:
            if j < n_u:
                allowed = grammar.allowed(state, used)
                i = int(allowed[rng.integers(len(allowed))])
            else:
                p = probs(state, "^" if not path else f"{path[-1][0]}={path[-1][1]}", used)
                i = int(rng.choice(len(p), p=p))
            path.append((state, i))
            for cn in grammar.choice(state, i).count:
                used[cn] = used.get(cn, 0) + 1
            state = grammar.choice(state, i).next
        walks.append(tuple(path))
    return walks


def features(grammar: Grammar, paths: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray:
    """One column per (state, choice): how often the walk took it."""
    offset, k = {}, 0
    for s, m in grammar.num_choices.items():
        offset[s] = k
        k += m
    rows = [r for r, path in enumerate(paths) for _ in path]
    cols = [offset[st] + i for path in paths for st, i in path]
    x = np.zeros((len(paths), k))
    np.add.at(x, (rows, cols), 1.0)
    return x


def gp_scores(x: np.ndarray, y: np.ndarray, xc: np.ndarray, kappa: float, clip: float, acq: str = "ucb") -> np.ndarray:
    """The acquisition of a GP fitted to ``(x, y)`` at the rows of ``xc`` (module docstring): ``ucb``,
    ``mean + kappa * sd``; ``ei``, the expected improvement over the best posterior mean at ``x``."""
    y = np.maximum(y, np.quantile(y, clip)) if clip > 0 else y
    sd = y.std()
    z = (y - y.mean()) / (sd if sd > 0 else 1.0)
    sq, sqc = (x * x).sum(1), (xc * xc).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0) / 2.0
    dc = np.maximum(sqc[:, None] + sq[None, :] - 2.0 * xc @ x.T, 0.0) / 2.0
    cos = x @ x.T / np.sqrt(np.outer(sq, sq))  # additive part: the share of decisions in common
    cosc = xc @ x.T / np.sqrt(np.outer(sqc, sq))
    best: tuple[float, float, float, np.ndarray, np.ndarray] | None = None
    for w in _ADDITIVE:
        for theta in _THETAS:
            kxx = w * cos + (1.0 - w) * np.exp(-theta * d)
            for noise in _NOISES:
                chol = np.linalg.cholesky(kxx + noise * np.eye(len(z)))
                alpha = cho_solve((chol, True), z)
                lml = -0.5 * float(z @ alpha) - float(np.log(np.diag(chol)).sum())
                if best is None or lml > best[0] + 1e-12:
                    best = (lml, w, theta, chol, alpha)
    assert best is not None
    _, w, theta, chol, alpha = best
    kc = w * cosc + (1.0 - w) * np.exp(-theta * dc)
    v = solve_triangular(chol, kc.T, lower=True)
    mean, sd = kc @ alpha, np.sqrt(np.maximum(1.0 - (v * v).sum(0), 0.0))
    if acq == "ucb":
        return mean + kappa * sd
    incumbent = float(np.max((w * cos + (1.0 - w) * np.exp(-theta * d)) @ alpha))
    gap = mean - incumbent
    u = gap / np.maximum(sd, 1e-12)
    return np.where(
        sd > 1e-12, gap * ndtr(u) + sd * np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi), np.maximum(gap, 0.0)
    )


def model_tables(
    grammar: Grammar,
    ok: Sequence[tuple[Sequence[tuple[str, int]], float]],
    probs: Callable[[str, str, dict[str, int]], np.ndarray],
    first_order: bool,
    seed: list[int],
    candidates: int = 1000,
    uniform: float = 0.5,
    kappa: float = 1.0,
    clip: float = 0.25,
    acq: str = "ucb",
) -> dict[str, np.ndarray]:
    """Per-state tables of a model trial (module docstring); ``{}`` when fewer than 3 results or no
    unevaluated candidate (the trial then samples the chain). ``probs(state, context, used)`` is the
    chain's sampling distribution; ``first_order``: it ignores the context (vectorised draws)."""
    if len(ok) < 3:
        return {}
    seen = {tuple(p) for p, _ in ok}
    fresh: dict[Path, None] = {}
    for p in draw_walks(grammar, probs, first_order, np.random.default_rng(seed), candidates, uniform):
        if p not in seen:
            fresh.setdefault(p, None)
    return _best_candidate_tables(grammar, ok, list(fresh), kappa, clip, acq)


def _best_candidate_tables(
    grammar: Grammar,
    ok: Sequence[tuple[Sequence[tuple[str, int]], float]],
    cand: list[Path],
    kappa: float,
    clip: float,
    acq: str,
) -> dict[str, np.ndarray]:
    """One-hot tables (states visited once) on the candidate the GP fitted to ``ok`` scores best; ``{}``: none."""
    if not cand:
        return {}
    x = features(grammar, [p for p, _ in ok])
    score = gp_scores(x, np.array([s for _, s in ok], dtype=np.float64), features(grammar, cand), kappa, clip, acq)
    return one_hot_tables(grammar, cand[int(np.argmax(score))])


def local_model_tables(
    grammar: Grammar,
    ok: Sequence[tuple[Sequence[tuple[str, int]], float]],
    top: int = 3,
    kappa: float = 1.0,
    clip: float = 0.25,
    acq: str = "ucb",
) -> dict[str, np.ndarray]:
    """A local move picked by the surrogate: among the unevaluated neighbours of the ``top`` best
    models, the one the GP scores best; one-hot tables on it (``{}``: none, or fewer than 3 results)."""
    if len(ok) < 3:
        return {}
    ranked = rank_models(ok)
    seen = {path for path, _, _ in ranked}
    cand: dict[Path, None] = {}
    for inc, _, _ in ranked[:top]:
        for path in neighbours(grammar, inc):
            if path not in seen:
                cand.setdefault(path, None)
    return _best_candidate_tables(grammar, ok, list(cand), kappa, clip, acq)
