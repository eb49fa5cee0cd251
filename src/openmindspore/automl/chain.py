"""A Markov chain over a grammar that learns from evaluated results.

States of the chain are the grammar's states (``context="none"``, the default: a first-order chain
over grammar states), optionally refined by the previous decision (``context="prev"``: a
second-order model of the decision sequence, with back-off to the first-order table). Each
(state, context) holds a categorical distribution ``q`` over the state's choices; sampling uses

    p = (1 - K * epsilon) * q + epsilon          (K = number of choices of the state)

restricted to the choices the grammar allows there (counters) and renormalised, so every allowed
transition keeps probability >= epsilon (the floor): no choice ever becomes impossible.

Learning rules (``ChainConfig.rule``):

``"cem"`` (default)
    Cross-entropy-method style: ``q`` is re-estimated from the *elite* (top ``elite_frac`` of all
    successful trials so far, at least ``min_elite``) with log-rank weights, a Dirichlet prior of
    ``prior`` pseudo-counts per choice, and back-off from the context-specific table to the
    context-free one (``backoff`` pseudo-counts). Repeated evaluations of one model count once, with
    their mean score (``average_repeats``: less winner's curse under noisy evaluations). Until
    ``warmup`` trials have succeeded ``q`` is uniform. With ``contrast`` > 0 the estimate is
    sharpened by how much more often the elite takes a choice than the rest of the models do
    (TPE's density ratio, per state): ``q ~ q_elite (q_elite / q_rest)^contrast``, ``q_rest`` the
    non-elite models' frequencies with ``prior`` pseudo-counts. The chain is a pure function of the
    results, so a resumed search rebuilds it exactly. Defaults were tuned on NAS-Bench-201 with
    search seeds 1000-1199 (the recorded benchmark uses seeds 0-99).
Local moves (``local``, :mod:`openmindspore.automl.local`)
    After ``local_after`` trials, a fraction ``local`` of the trials (a fixed schedule of the trial
    count) samples a neighbour of the incumbent: one-hot tables on the incumbent's decisions but
    one, moved to a choice not evaluated there yet. Floor and mask apply as to any trial, so every
    decision still has its exact propensity and the trial's distribution is a product over states.
    ``local_pick``: which neighbour; ``"mass"`` (default) moves the state whose unevaluated
    alternatives carry the most learned mass, ``"model"`` takes the unevaluated neighbour of the
    ``local_top`` best models that the model trials' surrogate scores best (``model_acq``,
    ``model_kappa``, ``model_clip``; :func:`openmindspore.automl.model.local_model_tables`).
Model trials (``model``, :mod:`openmindspore.automl.model`; off by default)
    After ``model_after`` trials, a fraction ``model`` of the trials that are not local moves
    propose the candidate a Gaussian-process surrogate of the results scores best
    (``model_acq``: ``mean + model_kappa * sd``, or the expected improvement) among
    ``model_candidates`` walks drawn from the chain (a share ``model_uniform`` from the uniform
    walk), as one-hot tables with the floor and mask on top.
Restarts (``restart``; off by default)
    The search is cut into independent runs of ``restart``, ``2 restart``, ``4 restart``, ... trials: at each
    cut the chain starts over (uniform, or from the warm prior) and learns only from the new run's results;
    local moves and model trials too. A run that settled in a second-best basin (the heavy tail) no longer
    holds the whole budget; the reported best is still the best of all trials.
Re-evaluation trials (``intensify``; off by default, :func:`openmindspore.automl.local.intensify_tables`)
    From trial ``intensify_after`` on, a fraction ``intensify`` of the trials (counted over the whole search)
    evaluates again one of the ``intensify_top`` best models by mean (upper bound ``intensify_c``): a lucky
    single score is checked, a good model gets more evaluations. They take precedence over local moves and
    model trials. The reported best stays the best single evaluation (its repeats are shown beside it).
Warm start (``warm``: a prior table from earlier searches, :mod:`openmindspore.automl.prior`)
    Each state the table shares with the grammar gets ``lambda * warm_strength`` extra pseudo-counts
    spread as the table's ``pi``: ``q = (elite counts + prior + lambda m pi) / (sum + prior K + lambda m)``
    (before ``warmup`` the elite counts are zero, so the chain starts from the prior). The weight
    ``lambda`` decays as the task's own results disagree with the prior: with ``n`` distinct models
    evaluated and ``rho`` the Spearman correlation of their mean scores with ``log pi(model)``,
    with ``a = clip(2 rho, 0, 1)`` (the agreement), ``lambda = ((warm_trust - n) + n a) / warm_trust``
    while ``n < warm_trust`` (blind trust fading linearly; 1 until ``n >= 3``) and ``lambda = a`` after.
    A prior that ranks the new task's models well keeps its weight; a misleading one is dropped
    after ``warm_trust`` models. ``lambda`` is a function of the results, so the chain stays a pure
    function of them and logged propensities stay exact. An optional warm-only
    schedule exploits the incumbent sooner: with a prior, local moves from trial ``warm_local_after``
    (when below ``local_after``) and model trials (a share ``warm_model`` > 0 of the trials that are
    not local moves) from trial ``warm_model_after``, regardless of ``warmup`` and of ``lambda``. Off
    by default (20, 0.0, 20: the schedule of a cold chain); 5, 0.5, 5 improved the misleading prior
    at 30 evaluations on every NB201 transfer pair but lifted one pair's warm30/cold30 above 0.5
    (docs/benchmarks.md, "warm-only schedule"), so the pre-declared rule kept it off. A cold chain
    never reads these fields.
``"naive"``
    A plain first-order chain with a moving-average update: each result better than the running
    mean moves ``q`` of the decisions it took by ``lr`` towards them. Kept as the ablation that
    shows the learning rule matters.

Every sampled decision records its *propensity*: the exact probability it had when sampled, and
the full distribution over the state's choices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from openmindspore.automl.chain_config import ChainConfig
from openmindspore.automl.grammar import Grammar
from openmindspore.automl.local import intensify_tables, is_local_trial, local_tables, run_start
from openmindspore.automl.model import candidate_seed, is_model_trial, local_model_tables, model_tables
from openmindspore.automl.prior import agreement, check_prior

__all__ = ["ChainConfig", "MarkovChain", "Step", "context_key"]


@dataclass
class Step:
    """One decision: the grammar state, the choice taken, its propensity ``p`` and the distribution
    ``probs`` (choice id -> probability, 0 for choices not allowed there) it was drawn from.
    ``p is None`` (and ``probs`` empty) when the sampler has no exact propensity (``tpe``)."""

    state: str
    choice: str
    p: float | None
    probs: dict[str, float]
    origin: str = "sampled"  # sampled | inherited | mutated (evolution)

    def to_json(self) -> dict:
        d = asdict(self)
        d["p"] = None if d["p"] is None else float(d["p"])
        return d


def context_key(prev: tuple[str, int] | None) -> str:
    """The context of a decision: the previous (state, choice index), or ``"^"`` at the start."""
    return "^" if prev is None else f"{prev[0]}={prev[1]}"


class MarkovChain:
    """A learnable Markov chain over ``grammar``. ``fit`` re-estimates it from results; ``sample``
    draws a complete decision sequence with per-decision propensities."""

    def __init__(self, grammar: Grammar, config: ChainConfig | None = None) -> None:
        self.grammar = grammar
        self.config = config or ChainConfig()
        self.config.check(max(grammar.num_choices.values()))
        self._base: dict[str, np.ndarray] = {}
        self._ctx: dict[tuple[str, str], np.ndarray] = {}
        self._warm: dict[str, np.ndarray] = {} if self.config.warm is None else check_prior(self.config.warm, grammar)
        self.warm_weight = 1.0 if self._warm else 0.0
        self.reset()

    def reset(self) -> None:
        """Back to the uniform chain."""
        self._base = {s: np.full(k, 1.0 / k) for s, k in self.grammar.num_choices.items()}
        self._ctx = {}
        self._local: dict[str, np.ndarray] = {}
        self.n_fitted = 0
        self.warm_weight = 1.0 if self._warm else 0.0
        for name, pi in self._warm.items():
            self._base[name] = self._blend(name, np.zeros(len(pi)))

    def _blend(self, state: str, counts: np.ndarray) -> np.ndarray:
        """``(counts + prior + lambda m pi) / (sum + prior K + lambda m)`` (no warm term without a prior)."""
        cfg, pi = self.config, self._warm.get(state)
        extra = np.zeros(len(counts)) if pi is None else self.warm_weight * cfg.warm_strength * pi
        return (counts + cfg.prior + extra) / (counts.sum() + cfg.prior * len(counts) + extra.sum())

    # ------------------------------------------------------------------ probabilities
    def q(self, state: str, context: str = "^") -> np.ndarray:
        """The distribution (before floor and mask) at (state, context): the learned one, or on a
        local trial the move to a neighbour of the incumbent (:mod:`openmindspore.automl.local`)."""
        if state in self._local:
            return self._local[state]
        if self.config.context == "prev":
            t = self._ctx.get((state, context))
            if t is not None:
                return t
        return self._base[state]

    def probs(self, state: str, context: str = "^", used: dict[str, int] | None = None) -> np.ndarray:
        """Sampling distribution over all choices of ``state`` (0 where not allowed); sums to 1 and
        every allowed choice has probability >= epsilon."""
        q = self.q(state, context)
        k = len(q)
        p = (1.0 - k * self.config.epsilon) * q + self.config.epsilon
        allowed = self.grammar.allowed(state, used or {})
        mask = np.zeros(k)
        mask[allowed] = 1.0
        p = p * mask
        return p / p.sum()

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator) -> tuple[list[Step], list[tuple[str, int]]]:
        """Draw one decision sequence. Returns ``(steps, path)`` where ``path = [(state, index)]``."""
        g = self.grammar
        state: str | None = g.start
        used: dict[str, int] = {}
        prev: tuple[str, int] | None = None
        steps: list[Step] = []
        path: list[tuple[str, int]] = []
        while state is not None:
            p = self.probs(state, context_key(prev), used)
            i = int(rng.choice(len(p), p=p))
            st = g.states[state]
            steps.append(
                Step(state, st.choices[i].id, float(p[i]), {c.id: float(p[j]) for j, c in enumerate(st.choices)})
            )
            path.append((state, i))
            for cn in st.choices[i].count:
                used[cn] = used.get(cn, 0) + 1
            prev = (state, i)
            state = st.choices[i].next
        return steps, path

    def log_prob(self, path: Sequence[tuple[str, int]]) -> float:
        """log P(path) under the current chain (sum of log propensities)."""
        used: dict[str, int] = {}
        prev = None
        total = 0.0
        for state, i in path:
            total += math.log(self.probs(state, context_key(prev), used)[i])
            for cn in self.grammar.choice(state, i).count:
                used[cn] = used.get(cn, 0) + 1
            prev = (state, i)
        return total

    # ------------------------------------------------------------------ learning
    def fit(self, results: Iterable[tuple[Sequence[tuple[str, int]], float | None]]) -> MarkovChain:
        """Re-estimate the chain from ``(path, score)`` pairs in trial order (higher score is better;
        ``None`` = failed trial, never an elite). Deterministic: same results -> same chain."""
        results = list(results)
        total = len(results)
        race = is_local_trial(total, self.config.intensify_after, self.config.intensify)  # a re-evaluation trial
        everything = [(path, s) for path, s in results if s is not None and math.isfinite(s)] if race else []
        results = results[run_start(total, self.config.restart) :]  # this run's only
        self.reset()
        ok = [(path, s) for path, s in results if s is not None and math.isfinite(s)]
        self.n_fitted = len(ok)
        if self._warm:
            self.warm_weight = agreement(self._warm, ok, self.config.warm_trust)
            for name in self._warm:
                self._base[name] = self._blend(name, np.zeros(len(self._base[name])))
        if self.config.rule == "naive":
            self._fit_naive(ok)
        elif len(ok) >= max(self.config.warmup, 1):
            self._fit_cem(ok)
        cfg, n = self.config, len(results)
        local_start, model_start, model_share = (
            max(cfg.warmup, cfg.local_after),
            max(cfg.warmup, cfg.model_after),
            cfg.model,
        )
        if self._warm and cfg.warm_local_after < cfg.local_after:  # a warm start's own, earlier schedule
            local_start = min(local_start, cfg.warm_local_after)
        if self._warm and cfg.warm_model > 0.0:
            model_start, model_share = min(model_start, cfg.warm_model_after), max(model_share, cfg.warm_model)
        if everything:  # on a re-evaluation trial with results (over all runs)
            self._local = intensify_tables(self.grammar, everything, cfg.intensify_top, cfg.intensify_c)
        elif ok and is_local_trial(n, local_start, cfg.local):
            if cfg.local_pick == "model":
                self._local = local_model_tables(
                    self.grammar, ok, cfg.local_top, cfg.model_kappa, cfg.model_clip, cfg.model_acq
                )
            else:
                self._local = local_tables(self.grammar, ok, self._base, cfg.local_top)
        elif ok and is_model_trial(n, model_start, model_share, local_start, cfg.local):
            self._local = model_tables(
                self.grammar,
                ok,
                self.probs,
                self.config.context == "none",
                candidate_seed(ok, n),
                cfg.model_candidates,
                cfg.model_uniform,
                cfg.model_kappa,
                cfg.model_clip,
                cfg.model_acq,
            )
        return self

    def _fit_cem(self, ok: list[tuple[Sequence[tuple[str, int]], float]]) -> None:
        cfg = self.config
        if cfg.average_repeats:  # one entry per distinct model, scored by the mean of its evaluations
            groups: dict[tuple, list[float]] = {}
            for path, s in ok:
                groups.setdefault(tuple(path), []).append(s)
            ok = [(list(path), float(np.mean(v))) for path, v in groups.items()]
        order = sorted(range(len(ok)), key=lambda j: -ok[j][1])  # stable: earlier trial wins ties
        k = min(len(ok), max(cfg.min_elite, int(math.ceil(cfg.elite_frac * len(ok)))))
        w = np.log(k + 1.0) - np.log(np.arange(1, k + 1))
        w = w * (k / w.sum())
        base = {s: np.zeros(n) for s, n in self.grammar.num_choices.items()}
        ctx: dict[tuple[str, str], np.ndarray] = {}
        for rank, j in enumerate(order[:k]):
            prev = None
            for state, i in ok[j][0]:
                base[state][i] += w[rank]
                key = (state, context_key(prev))
                if key not in ctx:
                    ctx[key] = np.zeros(len(base[state]))
                ctx[key][i] += w[rank]
                prev = (state, i)
        for name, counts in base.items():
            self._base[name] = self._blend(name, counts)
        if cfg.contrast > 0 and len(order) > k:  # TPE-like: sharpen by elite / rest density ratio
            rest = {s: np.full(n, cfg.prior) for s, n in self.grammar.num_choices.items()}
            for j in order[k:]:
                for state, i in ok[j][0]:
                    rest[state][i] += 1.0
            for name, r in rest.items():
                t = self._base[name] * (self._base[name] / (r / r.sum())) ** cfg.contrast
                self._base[name] = t / t.sum()
        if cfg.context == "prev":
            for (name, ctx_key), counts in ctx.items():
                self._ctx[(name, ctx_key)] = (counts + cfg.backoff * self._base[name]) / (counts.sum() + cfg.backoff)

    def _fit_naive(self, ok: list[tuple[Sequence[tuple[str, int]], float]]) -> None:
        lr = self.config.lr
        mean = None
        for n, (path, score) in enumerate(ok):
            if mean is not None and score > mean:
                for state, i in path:
                    t = self._base[state] * (1.0 - lr)
                    t[i] += lr
                    self._base[state] = t
            mean = score if mean is None else mean + (score - mean) / (n + 1)

    def table(self) -> dict[str, dict[str, float]]:
        """The context-free learned distributions, ``{state: {choice: q}}`` (for reports)."""
        return {
            s: {c.id: float(self._base[s][j]) for j, c in enumerate(st.choices)}
            for s, st in self.grammar.states.items()
        }
