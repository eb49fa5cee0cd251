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

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openmindspore.automl.chain import Step
from openmindspore.automl.grammar import Grammar

__all__ = ["Trial", "repeat_fields", "repeats", "repeats_note"]


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


def repeats(trials: Iterable[Trial], spec: Any) -> list[float]:
    """The scores of every successful evaluation of the model ``spec`` (a model may be evaluated again)."""
    key = json.dumps(spec, sort_keys=True)
    return [float(t.score or 0.0) for t in trials if t.ok and json.dumps(t.spec, sort_keys=True) == key]


def repeat_fields(trials: Iterable[Trial], spec: Any) -> dict[str, Any]:
    """``{"evaluations": n, "mean_score": m}`` of the model ``spec`` (a best trial's entry in ``summary.json`` and
    ``oms search --json``); ``{}`` when no successful trial evaluated it."""
    scores = repeats(trials, spec)
    return {"evaluations": len(scores), "mean_score": sum(scores) / len(scores)} if scores else {}


def repeats_note(n: int, mean: float) -> str:
    """`` (best of n evaluations, mean m)`` after a best trial's score, or nothing for one evaluation."""
    return f" (best of {n} evaluations, mean {mean:.4f})" if n > 1 else ""
