"""Treatment propensities and outcome-model terms from an automl search log (``trials.jsonl``).

A search samples trial ``t`` from the distribution ``q_t`` in force at that time (the Markov chain
re-fitted on the results before it). A treatment ``T = pred(spec)`` is a predicate on the whole
spec, so its propensity ``e_t = P_{q_t}(T = 1)`` sums over every walk of the grammar, not just the
sampled one. Two ways to get ``q_t`` exactly:

* **product grammars** (every walk visits the same states in the same order, no counters, e.g.
  NB201's six edges) sampled by ``random`` or ``markov`` with ``context="none"``: ``q_t`` is the
  product of the per-state distributions, and the log records each one in full (``steps[].probs``).
  All walks are enumerated once (NB201: 15,625) and ``e_t`` is an exact sum.
* **any other grammar** (e.g. the CNN grammar, with counters): the ``markov`` chain is a pure
  function of the earlier results (see :mod:`openmindspore.automl.chain`), so ``q_t`` is rebuilt by
  re-fitting it on the trials before ``t``'s batch (``random``: the uniform chain). The rebuilt
  chain must reproduce every logged ``probs`` of the trial (checked; a mismatch is an error), then
  ``e_t`` is estimated from ``mc_samples`` walks drawn from it (Monte-Carlo error
  ``~ sqrt(e(1-e)/mc_samples)``).

Estimands (``reference``):

``"search"`` (default)
    ``(1/n) sum_t (E_{q_t}[Y | T=1] - E_{q_t}[Y | T=0])``: the effect of forcing the treatment on
    (vs. off) in the sampler, averaged over the distributions the search actually used. Weights
    ``1/e_t`` and ``1/(1-e_t)`` (bounded by the chain's probability floor).
``"uniform"``
    ``E_U[Y | T=1] - E_U[Y | T=0]`` under the grammar's uniform walk distribution ``U`` (for NB201:
    over all 15,625 cells equally). Weights are the density ratios ``U(A_t)/q_t(A_t)`` of whole
    walks: exact, but they grow quickly as the chain concentrates (check the effective sample size).

The outcome model for AIPW is ridge regression on a bag of decisions (one count per (state,
choice)) plus ``T``, cross-fitted over ``folds``; being linear, its mean under ``q_t`` given ``T`` is
exact from the enumerated or sampled walks. (Cross-fitting assumes independent units; in an
adaptive log a later trial depends on earlier results, so a small bias is possible: measured on
NAS-Bench-201 it stays within about 1-2 standard errors, see docs/benchmarks.md.)

Evolution logs are refused: a mutant's distribution depends on its parent, not on a chain the log
can replay. So are logs whose steps carry ``p: null`` (``tpe``: no exact propensity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openmindspore.automl.chain import MarkovChain
from openmindspore.automl.grammar import Grammar, build_spec
from openmindspore.automl.records import Trial
from openmindspore.automl.strategies import MarkovSearch
from openmindspore.causal.estimators import EffectData
from openmindspore.errors import ConfigError

__all__ = [
    "LogUnits",
    "log_units",
    "is_product_grammar",
    "decision_features",
    "metric_value",
    "REFERENCES",
    "ridge_fit",
    "EnumeratedWalks",
]

REFERENCES = ("search", "uniform")
_MAX_ENUM = 200_000


def is_product_grammar(g: Grammar) -> bool:
    """True when every walk visits the same states in the same order (no counters, one ``next`` per state)."""
    state: str | None = g.start
    seen = set()
    while state is not None:
        if state in seen:
            return False
        seen.add(state)
        choices = g.states[state].choices
        if any(c.count for c in choices) or len({c.next for c in choices}) != 1:
            return False
        state = choices[0].next
    return len(seen) == len(g.states)


def _feature_index(g: Grammar) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for s, st in g.states.items():
        for i in range(len(st.choices)):
            out[(s, i)] = len(out)
    return out


def decision_features(g: Grammar, paths: Sequence[Sequence[tuple[str, int]]]) -> np.ndarray:
    """Bag-of-decisions features ``[n, sum of choices]``: how often each (state, choice) was taken."""
    idx = _feature_index(g)
    X = np.zeros((len(paths), len(idx)))
    for r, p in enumerate(paths):
        for key in p:
            X[r, idx[key]] += 1.0
    return X


def metric_value(trial: Any, metric: str) -> float | None:
    """``"score"`` or ``"split.name"`` (e.g. ``test.accuracy``) of a trial; None when absent."""
    if metric == "score":
        return trial.score
    split, _, name = metric.partition(".")
    v = (trial.metrics.get(split) or {}).get(name)
    return None if v is None else float(v)


def ridge_fit(X: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[float, np.ndarray]:
    """Ridge regression with an unpenalised intercept; returns ``(intercept, coef)``."""
    mu, ym = X.mean(axis=0), y.mean()
    Xc = X - mu
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return float(ym - mu @ coef), coef


@dataclass
class LogUnits:
    """What the estimators need from a log, per ok trial (arrays ``[n]``; features ``[n, d]``)."""

    trials: list[int]
    y: np.ndarray
    t: np.ndarray
    e: np.ndarray  # P_{q_t}(T=1)
    ratio: np.ndarray  # U(A_t) / q_t(A_t)
    x: np.ndarray  # features of the sampled walk (decisions + T)
    x1: np.ndarray  # E_{q_t}[features | T=1]
    x0: np.ndarray  # E_{q_t}[features | T=0]
    ref_e: float  # P_U(T=1)
    ref_x1: np.ndarray  # E_U[features | T=1]
    ref_x0: np.ndarray
    exact: bool  # e_t exact (enumeration) or Monte-Carlo
    info: dict[str, Any] = field(default_factory=dict)

    def effect_data(
        self,
        reference: str = "search",
        folds: int = 5,
        seed: int = 0,
        alpha: float = 1.0,
        fit: str = "crossfit",
        block: int = 10,
    ) -> EffectData:
        """Arrays for :func:`~openmindspore.causal.estimators.estimate` targeting ``reference``.

        ``fit="crossfit"`` (default) uses ``folds``-fold cross-fitting (the i.i.d. recipe);
        ``"sequential"`` fits the model of trial ``t`` only on trials before it (refitted every ``block``
        trials, no model before the first block): each unit's term is then unbiased given the past even
        though the search adapted (use with ``estimate(..., normalize=False)``), but the early models are
        fitted on few trials and on NAS-Bench-201 logs of 150 trials the estimate's RMSE was 4-7x worse
        than cross-fitting's (docs/benchmarks.md)."""
        if reference not in REFERENCES:
            raise ConfigError("--reference", reference, f"one of {list(REFERENCES)}")
        if fit not in ("sequential", "crossfit"):
            raise ConfigError("fit", fit, "one of 'sequential', 'crossfit'")
        n = len(self.y)
        f, g1, g0 = np.zeros(n), np.zeros(n), np.zeros(n)
        if fit == "crossfit":
            order = np.random.default_rng(seed).permutation(n)
            groups = [(np.setdiff1d(np.arange(n), fold), fold) for fold in np.array_split(order, max(2, min(folds, n)))]
        else:
            groups = [(np.arange(start), np.arange(start, min(start + block, n))) for start in range(block, n, block)]
        for train, rows in groups:
            b, coef = ridge_fit(self.x[train], self.y[train], alpha)
            f[rows] = b + self.x[rows] @ coef
            if reference == "search":
                g1[rows], g0[rows] = b + self.x1[rows] @ coef, b + self.x0[rows] @ coef
            else:
                g1[rows], g0[rows] = b + self.ref_x1 @ coef, b + self.ref_x0 @ coef
        if reference == "search":
            with np.errstate(divide="ignore"):
                w1, w0 = 1.0 / self.e, 1.0 / (1.0 - self.e)
        else:
            w1 = w0 = self.ratio
        return EffectData(self.y, self.t, w1, w0, f, g1, g0)


def _walk_prob_table(g: Grammar, trial: Trial) -> list[np.ndarray]:
    return [np.array([s.probs.get(c.id, 0.0) for c in g.states[s.state].choices]) for s in trial.steps]


def _uniform_logprob(trial: Trial) -> float:
    return -sum(math.log(sum(1 for v in s.probs.values() if v > 0)) for s in trial.steps)


class EnumeratedWalks:
    """All walks of a product grammar: decision indices ``[N, S]``, treatment ``[N]``, features ``[N, d]``."""

    def __init__(self, g: Grammar, pred: Callable[[Any], bool]) -> None:
        self.states: list[str] = []
        s: str | None = g.start
        while s is not None:
            self.states.append(s)
            s = g.states[s].choices[0].next
        sizes = [len(g.states[s].choices) for s in self.states]
        self.W = np.stack(np.meshgrid(*[np.arange(k) for k in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
        paths = [list(zip(self.states, map(int, row))) for row in self.W]
        self.T = np.array([bool(pred(build_spec(g, p))) for p in paths], dtype=np.float64)
        self.X = np.concatenate([decision_features(g, paths), self.T[:, None]], axis=1)

    def trial_probs(self, g: Grammar, trial: Trial) -> np.ndarray:
        """``q_t`` of every walk ``[N]`` from the trial's logged per-state distributions."""
        return self.probs(_walk_prob_table(g, trial))

    def probs(self, tables: list[np.ndarray]) -> np.ndarray:
        p = np.ones(len(self.W))
        for j, tab in enumerate(tables):
            p = p * tab[self.W[:, j]]
        return p


def _cond_means(P: np.ndarray, T: np.ndarray, X: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    e = float((P * T).sum() / P.sum())
    p1, p0 = P * T, P * (1.0 - T)
    x1 = p1 @ X / p1.sum() if p1.sum() > 0 else np.full(X.shape[1], np.nan)
    x0 = p0 @ X / p0.sum() if p0.sum() > 0 else np.full(X.shape[1], np.nan)
    return e, x1, x0


def _rebuild_chain(
    g: Grammar, config: dict[str, Any], trials: list[Trial], t: int, cache: dict[int, MarkovChain]
) -> MarkovChain:
    """The chain trial ``t`` was sampled from, checked against its logged probabilities."""
    tr = trials[t]
    if config["strategy"] == "random":
        cands = [0]
    else:
        w = max(1, int(config.get("workers", 1)))
        start = t - t % w
        cands = [start] + [h for h in range(t, max(-1, t - 65), -1) if h != start]
    for h in cands:
        if h not in cache:
            if config["strategy"] == "random":
                chain = MarkovChain(g)
            else:
                chain = MarkovSearch(g, **config.get("strategy_options", {})).chain
                chain.fit((x.path, x.score if x.ok else None) for x in trials[:h])
            cache[h] = chain
        chain = cache[h]
        if abs(chain.log_prob(tr.path) - (tr.log_propensity or 0.0)) < 1e-6:
            return chain
    raise ConfigError(
        f"trials.jsonl trial {t}",
        tr.log_propensity,
        "a trial whose sampling chain can be rebuilt "
        "from the earlier trials (re-fitting the chain does not reproduce its logged propensities)",
        "was the log edited, or written by another version of the chain?",
    )


def log_units(
    config: dict[str, Any],
    trials: list[Trial],
    grammar: Grammar,
    pred: Callable[[Any], bool],
    metric: str,
    mc_samples: int = 2000,
    seed: int = 0,
    enumerated: EnumeratedWalks | None = None,
    method: str = "auto",
    outcomes: dict[int, Any] | None = None,
) -> LogUnits:
    """Per-trial treatment, outcome, propensity, density ratio and outcome-model features.

    ``enumerated`` reuses the walks of a product grammar already enumerated for ``pred``
    (benchmarks analyse many logs of one grammar). ``method``: ``"auto"`` (enumerate when the grammar
    allows), ``"enumerate"`` or ``"montecarlo"`` (rebuild the chain and sample; any grammar).
    ``outcomes`` (trial index -> a record with ``ok``/``score``/``metrics``, e.g. a multi-fidelity
    search's promotions at one budget) replaces the trials' own outcomes; trials without one are left out,
    while treatment and propensities stay those logged with the trial."""
    if method not in ("auto", "enumerate", "montecarlo"):
        raise ConfigError("method", method, "one of 'auto', 'enumerate', 'montecarlo'")
    strategy = config.get("strategy")
    missing = [tr.trial for tr in trials if not tr.has_propensities]
    if missing:
        raise ConfigError(
            "trials.jsonl",
            f"{len(missing)} trials without propensities (first: trial {missing[0]}, strategy {strategy!r})",
            "a log whose every decision has its sampling probability (markov or random searches)",
            "tpe samples from a model it does not expose; search with --strategy markov to analyse effects",
        )
    if strategy not in ("markov", "random"):
        raise ConfigError(
            "strategy",
            strategy,
            "a 'markov' or 'random' search log (their sampling distributions can be replayed)",
            "evolution logs carry propensities given a parent only",
        )
    out = {tr.trial: tr for tr in trials} if outcomes is None else outcomes

    def _y(tr: Trial) -> float | None:
        rec = out.get(tr.trial)
        return None if rec is None or not rec.ok else metric_value(rec, metric)

    ok = [tr for tr in trials if _y(tr) is not None and math.isfinite(_y(tr) or float("nan"))]
    if len(ok) < 4:
        raise ConfigError(
            "--metric",
            metric,
            f"a metric present in at least 4 successful trials (found {len(ok)} of {len(trials)})",
            "use e.g. test.accuracy, val.accuracy or score",
        )
    y = np.array([_y(tr) for tr in ok], dtype=np.float64)
    t = np.array([bool(pred(tr.spec)) for tr in ok], dtype=np.float64)
    x = np.concatenate([decision_features(grammar, [tr.path for tr in ok]), t[:, None]], axis=1)
    ratio = np.exp([_uniform_logprob(tr) - (tr.log_propensity or 0.0) for tr in ok])
    product = is_product_grammar(grammar) and (
        strategy == "random" or config.get("strategy_options", {}).get("context", "none") == "none"
    )
    n_walks = math.prod(len(st.choices) for st in grammar.states.values())
    e, x1, x0 = np.zeros(len(ok)), np.zeros_like(x), np.zeros_like(x)
    info: dict[str, Any]
    if method == "enumerate" and not (product and n_walks <= _MAX_ENUM):
        raise ConfigError(
            "method",
            method,
            f"a product grammar with <= {_MAX_ENUM} walks sampled without context "
            f"(grammar {grammar.name!r} has {n_walks} walks)",
            "use method='montecarlo'",
        )
    if method != "montecarlo" and product and n_walks <= _MAX_ENUM:
        en = enumerated if enumerated is not None else EnumeratedWalks(grammar, pred)
        for r, tr in enumerate(ok):
            if [s.state for s in tr.steps] != en.states:
                raise ConfigError(
                    f"trials.jsonl trial {tr.trial}",
                    [s.state for s in tr.steps],
                    f"the grammar's states in order {en.states}",
                )
            e[r], x1[r], x0[r] = _cond_means(en.trial_probs(grammar, tr), en.T, en.X)
        ref_e, ref_x1, ref_x0 = _cond_means(np.ones(len(en.T)), en.T, en.X)
        exact, info = True, {"propensity": f"exact (enumerated {len(en.T)} walks)"}
    else:
        rng = np.random.default_rng(seed)
        cache: dict[int, MarkovChain] = {}
        memo: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}

        def mc(chain: MarkovChain) -> tuple[float, np.ndarray, np.ndarray]:
            paths = [chain.sample(rng)[1] for _ in range(mc_samples)]
            T = np.array([bool(pred(build_spec(grammar, p))) for p in paths], dtype=np.float64)
            return _cond_means(np.ones(len(T)), T, np.concatenate([decision_features(grammar, paths), T[:, None]], 1))

        for r, tr in enumerate(ok):
            chain = _rebuild_chain(grammar, config, trials, tr.trial, cache)
            if id(chain) not in memo:
                memo[id(chain)] = mc(chain)
            e[r], x1[r], x0[r] = memo[id(chain)]
        ref_e, ref_x1, ref_x0 = mc(MarkovChain(grammar))
        exact, info = False, {"propensity": f"Monte-Carlo ({mc_samples} walks from each rebuilt chain)"}
    # an arm never drawn in the MC sample: its conditional mean is unknown; use the sampled walk instead
    for arr in (x1, x0):
        bad = ~np.isfinite(arr).all(axis=1)
        arr[bad] = x[bad]
    ref_x1 = np.where(np.isfinite(ref_x1), ref_x1, x[t == 1].mean(0) if t.any() else 0.0)
    ref_x0 = np.where(np.isfinite(ref_x0), ref_x0, x[t == 0].mean(0) if (t == 0).any() else 0.0)
    info.update({"n_trials": len(trials), "n_ok": len(ok)})
    return LogUnits([tr.trial for tr in ok], y, t, e, ratio, x, x1, x0, float(ref_e), ref_x1, ref_x0, exact, info)
