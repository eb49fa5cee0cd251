"""Search strategies over a grammar: ``markov`` (learned chain), ``random``, ``evolution`` (``tpe``:
:mod:`openmindspore.automl.tpe`, registered in :data:`STRATEGIES` when the package is imported).

A strategy proposes one decision sequence from the history of trials so far (a list of
:class:`~openmindspore.automl.records.Trial` in trial order). Proposals depend only on the history
and the per-trial random generator, so a search is reproducible and resumable from its log.

Propensities recorded per decision (``Step.p``):

* ``random``: ``1 / #allowed choices`` at that state (the uniform chain);
* ``markov``: the chain's probability at sampling time (floor and grammar mask included);
* ``evolution``: for the initial random population as ``random``; for a mutant, the probability of
  the decision *given the parent*: ``1 - 1/L`` for a kept decision and ``1/(L (K-1))`` for the
  mutated one (``L`` mutable positions, ``K`` allowed choices there). Decisions re-sampled after a
  structural mutation (the parent had no aligned decision) carry the uniform probability. For
  fixed-structure grammars (nb201) these are exact per-decision probabilities given the parent.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from openmindspore.automl.chain import ChainConfig, MarkovChain, Step
from openmindspore.automl.grammar import Grammar
from openmindspore.automl.records import Trial
from openmindspore.errors import ConfigError

__all__ = [
    "Strategy",
    "RandomSearch",
    "MarkovSearch",
    "RegularizedEvolution",
    "STRATEGIES",
    "make_strategy",
    "parse_strategy_options",
    "Proposal",
    "uniform_walk",
]

Proposal = tuple[list[Step], list[tuple[str, int]], "int | None"]


class Strategy:
    """Base class: ``propose(history, rng) -> (steps, path, parent)``."""

    name = ""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """The options a user may set (``oms search --strategy-option``) -> their type (``None``: any
        JSON value, checked by the strategy itself): by default the keyword parameters of ``__init__``."""
        hints = typing.get_type_hints(cls.__init__)
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, grammar
        return {p.name: hints.get(p.name) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD}


def _uniform_step(
    grammar: Grammar, state: str, used: dict[str, int], rng: np.random.Generator, origin: str = "sampled"
) -> tuple[Step, int]:
    allowed = grammar.allowed(state, used)
    i = int(allowed[rng.integers(len(allowed))])
    st = grammar.states[state]
    probs = {c.id: (1.0 / len(allowed) if j in allowed else 0.0) for j, c in enumerate(st.choices)}
    return Step(state, st.choices[i].id, 1.0 / len(allowed), probs, origin), i


def _advance(grammar: Grammar, state: str, i: int, used: dict[str, int]) -> str | None:
    c = grammar.choice(state, i)
    for k in c.count:
        used[k] = used.get(k, 0) + 1
    return c.next


def uniform_walk(grammar: Grammar, rng: np.random.Generator) -> tuple[list[Step], list[tuple[str, int]]]:
    """One walk choosing uniformly among the allowed choices at every state."""
    state: str | None = grammar.start
    used: dict[str, int] = {}
    steps, path = [], []
    while state is not None:
        step, i = _uniform_step(grammar, state, used, rng)
        steps.append(step)
        path.append((state, i))
        state = _advance(grammar, state, i, used)
    return steps, path


class RandomSearch(Strategy):
    """Uniform random walks through the grammar."""

    name = "random"

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        steps, path = uniform_walk(self.grammar, rng)
        return steps, path, None


class MarkovSearch(Strategy):
    """Sample from a :class:`MarkovChain` re-fitted on all results so far."""

    name = "markov"

    def __init__(self, grammar: Grammar, **chain_options: Any) -> None:
        super().__init__(grammar)
        unknown = set(chain_options) - set(ChainConfig.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                "strategy options", sorted(unknown), f"chain options among {sorted(ChainConfig.__dataclass_fields__)}"
            )
        self.chain = MarkovChain(grammar, ChainConfig(**chain_options))
        self._fitted_on: tuple[int, int] | None = None

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        key = (len(history), history[-1].trial if history else -1)
        if key != self._fitted_on:
            self.chain.fit((t.path, t.score if t.ok else None) for t in history)
            self._fitted_on = key
        steps, path = self.chain.sample(rng)
        return steps, path, None

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(ChainConfig)
        return {k: hints[k] for k in ChainConfig.__dataclass_fields__ if k != "warm"}  # warm: --prior

    def describe(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"strategy": self.name, "chain": asdict(self.chain.config)}


class RegularizedEvolution(Strategy):
    """Regularized (aging) evolution (Real et al., 2019): the population is the ``population`` most
    recent successful trials; a parent is the best of ``sample`` of them drawn at random; the child
    changes one uniformly chosen decision to another allowed choice. Until the population is full,
    proposals are uniform random walks."""

    name = "evolution"

    def __init__(self, grammar: Grammar, population: int = 20, sample: int = 5) -> None:
        super().__init__(grammar)
        if population < 2 or not 1 <= sample <= population:
            raise ConfigError(
                "evolution",
                {"population": population, "sample": sample},
                "population >= 2 and 1 <= sample <= population",
            )
        self.population, self.sample = population, sample

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        ok = [t for t in history if t.ok]
        if len(ok) < self.population:
            steps, path = uniform_walk(self.grammar, rng)
            return steps, path, None
        pop = ok[-self.population :]
        picks = rng.choice(len(pop), size=self.sample, replace=False)
        parent = max((pop[j] for j in picks), key=lambda t: (t.score, -t.trial))
        steps, path = self.mutate(parent.path, rng)
        return steps, path, parent.trial

    def mutate(
        self, parent: Sequence[tuple[str, int]], rng: np.random.Generator
    ) -> tuple[list[Step], list[tuple[str, int]]]:
        """Change one decision of ``parent``; keep the rest where the grammar still aligns."""
        g = self.grammar
        used: dict[str, int] = {}
        mutable = []
        for pos, (name, i) in enumerate(parent):
            if len([j for j in g.allowed(name, used) if j != i]) >= 1:
                mutable.append(pos)
            _advance(g, name, i, used)
        if not mutable:
            return [Step(s, g.choice(s, i).id, 1.0, {g.choice(s, i).id: 1.0}, "inherited") for s, i in parent], list(
                parent
            )
        L = len(mutable)
        target = mutable[int(rng.integers(L))]
        steps: list[Step] = []
        path: list[tuple[str, int]] = []
        used = {}
        state: str | None = g.start
        cursor = 0  # next parent decision to align with
        while state is not None:
            st = g.states[state]
            allowed = g.allowed(state, used)
            if cursor == target and parent[cursor][0] == state:
                old = parent[cursor][1]
                others = [j for j in allowed if j != old]
                i = int(others[rng.integers(len(others))])
                p_mut = 1.0 / (L * len(others))
                probs = {
                    c.id: (1.0 - 1.0 / L if j == old else (p_mut if j in others else 0.0))
                    for j, c in enumerate(st.choices)
                }
                steps.append(Step(state, st.choices[i].id, p_mut, probs, "mutated"))
                cursor += 1
            else:
                j = cursor
                while j < len(parent) and parent[j][0] != state:
                    j += 1
                if j < len(parent) and parent[j][1] in allowed and j != target:
                    i = parent[j][1]
                    p_keep = 1.0 - 1.0 / L if j in mutable else 1.0
                    others = [k for k in allowed if k != i]
                    probs = {
                        c.id: (p_keep if k == i else ((1.0 - p_keep) / len(others) if k in others else 0.0))
                        for k, c in enumerate(st.choices)
                    }
                    steps.append(Step(state, st.choices[i].id, p_keep, probs, "inherited"))
                    cursor = j + 1
                else:
                    step, i = _uniform_step(g, state, used, rng)
                    steps.append(step)
            path.append((state, i))
            state = _advance(g, state, i, used)
        return steps, path

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "population": self.population, "sample": self.sample}


STRATEGIES: dict[str, type[Strategy]] = {
    "markov": MarkovSearch,
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
}


def make_strategy(name: str, grammar: Grammar, **options: Any) -> Strategy:
    """Build a strategy by name (``markov`` | ``random`` | ``evolution``) with its options."""
    if name not in STRATEGIES:
        raise ConfigError("strategy", name, f"one of {sorted(STRATEGIES)}")
    try:
        return STRATEGIES[name](grammar, **options)
    except TypeError as e:
        raise ConfigError("strategy options", options, f"options accepted by {name!r} ({e})") from None


def _typed(name: str, key: str, raw: str, typ: Any) -> Any:
    """``raw`` (a JSON value, or a plain string) as an option of type ``typ``, else a ConfigError."""
    if typ is str:
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    ok = (
        typ is None
        or (typ is bool and isinstance(value, bool))
        or (typ is int and isinstance(value, int) and not isinstance(value, bool))
        or (typ is float and isinstance(value, (int, float)) and not isinstance(value, bool))
    )
    if not ok:
        kind = getattr(typ, "__name__", str(typ))
        raise ConfigError(
            f"--strategy-option {key}", value, f"a {kind} (the {name} option {key!r})", f"e.g. {key}={_example(typ)}"
        )
    return float(value) if typ is float else value


def _example(typ: Any) -> str:
    return {bool: "true", int: "2", float: "1.0"}.get(typ, "VALUE")


def parse_strategy_options(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``oms search --strategy-option``) as the options of strategy ``name``: each
    key must be one of its :meth:`Strategy.option_types`, each value of that type (JSON, or a plain
    string for a string option); ranges are checked when the strategy is built."""
    if name not in STRATEGIES:
        raise ConfigError("--strategy", name, f"one of {sorted(STRATEGIES)}")
    types = STRATEGIES[name].option_types()
    allowed = ", ".join(sorted(types)) or "none"
    example = "model" if "model" in types else next(iter(sorted(types)), "")
    out: dict[str, Any] = {}
    for kv in pairs:
        key, sep, raw = kv.partition("=")
        if not sep or key.strip() not in types:
            raise ConfigError(
                "--strategy-option",
                kv,
                f"KEY=VALUE with KEY one of the {name} options: {allowed}",
                f"e.g. --strategy-option {example}={_example(types[example])}" if types else "drop it",
            )
        key = key.strip()
        out[key] = _typed(name, key, raw.strip(), types[key])
    return out
