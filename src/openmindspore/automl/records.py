"""The trial record: one line of ``trials.jsonl`` per evaluated model.

Fields: ``trial`` (0-based index), ``strategy``, ``spec`` (the model), ``steps`` (each decision:
``state``, ``choice``, ``p`` = its propensity when sampled, ``probs`` = the distribution it was
drawn from, ``origin``), ``log_propensity`` (sum of ``log p``: the exact log-probability of the
whole decision sequence for ``markov`` and ``random``; ``null`` for ``tpe``, whose steps log
``p: null``; for an evolution mutant the steps carry per-decision probabilities given the parent,
whose product is not the joint; the joint given the parent is the ``p`` of its ``"mutated"`` step),
``parent`` (evolution), ``metrics`` (``{"val": {...}, "test": {...}}``), ``score`` (the validation
objective), ``seed``, ``duration_s``, ``status`` (``"ok"`` | ``"failed"``) and ``error`` (the
exception, when failed); ``budget`` (the training steps of a multi-fidelity search's rung 0, see
:mod:`openmindspore.automl.halving`; absent otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openmindspore.automl.chain import Step
from openmindspore.automl.grammar import Grammar

__all__ = ["Trial", "best_trial", "evaluations", "mean_note"]


@dataclass
class Trial:
    trial: int
    strategy: str
    spec: Any
    steps: list[Step]
    path: list[tuple[str, int]]
    seed: int
    parent: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    score: float | None = None
    duration_s: float = 0.0
    status: str = "pending"
    error: str | None = None
    budget: int | None = None  # training steps it was evaluated at (multi-fidelity searches only)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.score is not None

    @property
    def has_propensities(self) -> bool:
        """False when a decision was drawn without an exact propensity (``tpe``: logged as ``null``)."""
        return all(s.p is not None for s in self.steps)

    @property
    def log_propensity(self) -> float | None:
        """``sum(log p)``; ``None`` when some decision has no propensity."""
        ps = [s.p for s in self.steps if s.p is not None]
        if len(ps) < len(self.steps):
            return None
        return float(sum(math.log(p) for p in ps)) if all(p > 0 for p in ps) else float("-inf")

    def to_json(self) -> dict[str, Any]:
        out = {
            "trial": self.trial,
            "strategy": self.strategy,
            "status": self.status,
            "score": self.score,
            "metrics": self.metrics,
            "spec": self.spec,
            "steps": [s.to_json() for s in self.steps],
            "log_propensity": self.log_propensity,
            "parent": self.parent,
            "seed": self.seed,
            "duration_s": round(self.duration_s, 6),
            "error": self.error,
        }
        if self.budget is not None:
            out["budget"] = self.budget
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], grammar: Grammar) -> Trial:
        steps = [
            Step(
                s["state"],
                s["choice"],
                None if s["p"] is None else float(s["p"]),
                dict(s.get("probs") or {}),
                s.get("origin", "sampled"),
            )
            for s in d["steps"]
        ]
        path = grammar.walk([s.choice for s in steps])
        return cls(
            trial=int(d["trial"]),
            strategy=d["strategy"],
            spec=d["spec"],
            steps=steps,
            path=path,
            seed=int(d["seed"]),
            parent=d.get("parent"),
            metrics=d.get("metrics") or {},
            score=d.get("score"),
            duration_s=float(d.get("duration_s", 0.0)),
            status=d["status"],
            error=d.get("error"),
            budget=d.get("budget"),
        )


def best_trial(trials: Iterable[Trial]) -> Trial | None:
    """The best successful model by the *mean* score of its evaluations (a model evaluated again counts
    once; ties: the earliest seen), as its first trial with ``score`` replaced by that mean. With one
    evaluation per model this is the best trial. ``None`` when no trial succeeded."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        if t.ok:
            groups.setdefault(json.dumps(t.spec, sort_keys=True), []).append(t)
    if not groups:
        return None
    means = [(sum(float(t.score or 0.0) for t in g) / len(g), g[0]) for g in groups.values()]
    mean, first = max(means, key=lambda m: (m[0], -m[1].trial))
    return first if len(groups[json.dumps(first.spec, sort_keys=True)]) == 1 else dataclasses.replace(first, score=mean)


def evaluations(trials: Iterable[Trial], spec: Any) -> int:
    """How many successful trials evaluated the model ``spec`` (the count behind a best trial's mean)."""
    key = json.dumps(spec, sort_keys=True)
    return sum(t.ok and json.dumps(t.spec, sort_keys=True) == key for t in trials)


def mean_note(n: int) -> str:
    """`` (mean of n evaluations)`` after a reported score, or nothing for one."""
    return f" (mean of {n} evaluations)" if n > 1 else ""
