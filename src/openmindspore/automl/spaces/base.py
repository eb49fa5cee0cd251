"""The search-space interface: a grammar plus a spec builder plus an evaluator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from openmindspore.automl.grammar import Grammar, build_spec

__all__ = ["SearchSpace"]


class SearchSpace(ABC):
    """A family of models. Subclasses set ``name``, ``grammar``, ``objective`` and implement
    :meth:`evaluate`. A space must be reconstructible from ``(name, dataset, options)`` so trials can
    be evaluated in other processes (see :func:`openmindspore.automl.spaces.make_space`)."""

    name: str = ""
    #: key of ``metrics["val"]`` that the search maximises
    objective: str = "accuracy"
    grammar: Grammar
    #: the option holding each trial's training budget (steps), for multi-fidelity search; None: no budget
    budget_option: str | None = None
    #: that option's default value
    default_budget: int = 0

    def __init__(self, dataset: str, **options: Any) -> None:
        self.dataset = dataset
        self.options = dict(options)

    def spec(self, path: Sequence[tuple[str, int]]) -> Any:
        """The JSON-able model spec of a walk ``[(state, choice index)]``."""
        return build_spec(self.grammar, path)

    @abstractmethod
    def evaluate(self, spec: Any, seed: int) -> dict[str, dict[str, float]]:
        """Train/evaluate ``spec``; returns ``{"val": {...}, "test": {...}}`` (``val[objective]`` is
        maximised). Raise on failure: the search logs the trial as failed and goes on."""

    def full_budget(self) -> int:
        """The configured training budget of a trial (``options[budget_option]`` or its default)."""
        if self.budget_option is None:
            raise ValueError(f"space {self.name!r} has no training budget")
        return int(self.options.get(self.budget_option, self.default_budget))

    def describe(self) -> dict[str, Any]:
        return {"space": self.name, "dataset": self.dataset, "options": self.options, "objective": self.objective}
