"""``--strategy tpe``: Optuna's TPE sampler over a grammar (the baseline users run; optional extra ``optuna``).

Owns nothing between proposals: each proposal builds a fresh in-memory Optuna study, adds every
earlier trial of the history to it (``optuna.trial.create_trial``: its decisions as categorical
parameters, its validation score as the value, failed trials as ``FAIL``), and asks one trial from a
:class:`optuna.samplers.TPESampler` seeded from the trial's generator. So, like the other strategies,
a proposal is a pure function of (history, rng): searches are reproducible and resume exactly.

The grammar is walked define-by-run: at decision ``j`` in state ``s`` the parameter is named
``"j:s"`` (``"j:s:ids"`` when counters restrict the allowed choices, so a name always has one
categorical distribution). TPE draws from a mixture of Parzen estimators that it does not expose,
so the steps of a ``tpe`` trial log ``p: null`` and ``probs: {}``: such logs cannot be analysed by
``oms effects`` (it refuses them with a one-line error).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from openmindspore.automl.chain import Step
from openmindspore.automl.grammar import Grammar
from openmindspore.automl.records import Trial
from openmindspore.automl.strategies import STRATEGIES, Proposal, Strategy
from openmindspore.errors import ConfigError

__all__ = ["TPESearch", "param_name"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "--strategy", "tpe", "the optional dependency optuna", "pip install 'openmindspore[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def param_name(grammar: Grammar, pos: int, state: str, allowed: Sequence[int]) -> str:
    """The Optuna parameter of decision ``pos`` at ``state`` with the ``allowed`` choice indices."""
    if len(allowed) == len(grammar.states[state].choices):
        return f"{pos}:{state}"
    return f"{pos}:{state}:" + ",".join(grammar.states[state].choices[i].id for i in allowed)


class TPESearch(Strategy):
    """Optuna's ``TPESampler`` (its defaults unless ``options`` say otherwise) over the grammar's decisions."""

    name = "tpe"

    def __init__(self, grammar: Grammar, **sampler_options: Any) -> None:
        super().__init__(grammar)
        optuna = _optuna()
        if "seed" in sampler_options:
            raise ConfigError("strategy options", "seed", "no 'seed' (the search seeds each proposal)")
        try:
            optuna.samplers.TPESampler(**sampler_options)
        except TypeError as e:
            raise ConfigError("strategy options", sampler_options, f"TPESampler options ({e})") from None
        self.sampler_options = dict(sampler_options)

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """``TPESampler``'s keyword options but ``seed`` (any JSON value; the sampler checks them)."""
        params = inspect.signature(_optuna().samplers.TPESampler.__init__).parameters
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {k: None for k, p in params.items() if k not in ("self", "seed") and p.kind in kinds}

    def _record(self, optuna: Any, trial: Trial) -> Any:
        g, used = self.grammar, {}  # type: ignore[var-annotated]
        params, dists = {}, {}
        for pos, (state, i) in enumerate(trial.path):
            allowed = g.allowed(state, used)
            name = param_name(g, pos, state, allowed)
            ids = tuple(g.states[state].choices[j].id for j in allowed)
            params[name], dists[name] = g.choice(state, i).id, optuna.distributions.CategoricalDistribution(ids)
            for cn in g.choice(state, i).count:
                used[cn] = used.get(cn, 0) + 1
        if trial.ok:
            return optuna.trial.create_trial(params=params, distributions=dists, value=float(trial.score))  # type: ignore[arg-type]
        return optuna.trial.create_trial(params=params, distributions=dists, state=optuna.trial.TrialState.FAIL)

    def propose(self, history: Sequence[Trial], rng: np.random.Generator) -> Proposal:
        optuna = _optuna()
        seed = int(rng.integers(2**31 - 1))
        sampler = optuna.samplers.TPESampler(seed=seed, **self.sampler_options)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials([self._record(optuna, t) for t in history])
        ot = study.ask()
        g = self.grammar
        state: str | None = g.start
        used: dict[str, int] = {}
        steps: list[Step] = []
        path: list[tuple[str, int]] = []
        while state is not None:
            allowed = g.allowed(state, used)
            ids = [g.states[state].choices[j].id for j in allowed]
            cid = ot.suggest_categorical(param_name(g, len(path), state, allowed), ids)
            i = g.states[state].index(cid)
            steps.append(Step(state, cid, None, {}))
            path.append((state, i))
            for cn in g.choice(state, i).count:
                used[cn] = used.get(cn, 0) + 1
            state = g.choice(state, i).next
        return steps, path, None

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "sampler": "optuna.samplers.TPESampler", "options": self.sampler_options}


STRATEGIES["tpe"] = TPESearch
