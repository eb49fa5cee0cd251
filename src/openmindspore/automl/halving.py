"""Multi-fidelity search: successive halving over a space's training budget (one bracket, synchronous).

With ``halving = {"eta": eta, "rungs": R}`` a search of ``budget = n`` models on a space with a step budget
``B`` (the ``cnn`` space's ``steps``) evaluates every proposed model at the lowest fidelity
``B / eta**(R-1)`` (rung 0: these are the ordinary trials of ``trials.jsonl``, proposed by the strategy
from the rung-0 history only, with their logged decisions and propensities). When all ``n`` are done, the
best ``n // eta`` successful ones (by validation score, ties to the earlier trial) are re-evaluated at
``eta`` times the budget (rung 1), the best ``n // eta**2`` of those at rung 2, ... up to ``B``.

A re-evaluation is a :class:`Promotion`, one line of ``promotions.jsonl``: ``promoted_from`` (the trial
index), ``rung``, ``budget`` (steps), its ``status``/``score``/``metrics``, the spec and training seed of
the trial, and *no* sampling decision (the model was drawn once, logged once with its propensities).
The schedule is a pure function of the logged results, so a resumed search re-derives it and evaluates
only what is missing (a logged promotion is reused, never re-trained). The search's best is chosen among
the highest rung that has a successful evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmindspore.automl.records import Trial
from openmindspore.automl.spaces import SPACES, SearchSpace
from openmindspore.errors import ConfigError

__all__ = ["Promotion", "parse_halving", "halving_config", "select", "rung_sizes", "load_promotions"]


@dataclass
class Promotion:
    """The re-evaluation of trial ``promoted_from`` at ``budget`` steps (rung ``rung`` >= 1)."""

    promoted_from: int
    rung: int
    budget: int
    spec: Any
    seed: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    score: float | None = None
    duration_s: float = 0.0
    status: str = "pending"
    error: str | None = None

    @property
    def trial(self) -> int:
        return self.promoted_from

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.score is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "promoted_from": self.promoted_from,
            "rung": self.rung,
            "budget": self.budget,
            "status": self.status,
            "score": self.score,
            "metrics": self.metrics,
            "spec": self.spec,
            "seed": self.seed,
            "duration_s": round(self.duration_s, 6),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Promotion:
        return cls(
            promoted_from=int(d["promoted_from"]),
            rung=int(d["rung"]),
            budget=int(d["budget"]),
            spec=d["spec"],
            seed=int(d["seed"]),
            metrics=d.get("metrics") or {},
            score=d.get("score"),
            duration_s=float(d.get("duration_s", 0.0)),
            status=d["status"],
            error=d.get("error"),
        )


def parse_halving(value: str | int | dict[str, Any] | None) -> dict[str, int] | None:
    """``"ETA"``, ``"ETA,RUNGS"``, an int or ``{"eta", "rungs"}`` -> ``{"eta", "rungs"}`` (rungs default 3)."""
    if value is None:
        return None
    fix = "e.g. --halving 3 (eta 3, 3 rungs) or --halving 2,4"
    if isinstance(value, dict):
        raw = [value.get("eta"), value.get("rungs", 3)]
    elif isinstance(value, int) and not isinstance(value, bool):
        raw = [value, 3]
    else:
        parts = str(value).split(",")
        raw = [p.strip() for p in parts] + ([3] if len(parts) == 1 else [])
        if len(raw) != 2:
            raise ConfigError("--halving", value, "ETA or ETA,RUNGS (two integers at most)", fix)
    try:
        eta, rungs = (int(str(x)) for x in raw)
    except ValueError:
        raise ConfigError("--halving", value, "ETA or ETA,RUNGS with integers", fix) from None
    if eta < 2:
        raise ConfigError("--halving eta", eta, "an integer >= 2 (the factor between budgets)", fix)
    if rungs < 2:
        raise ConfigError("--halving rungs", rungs, "an integer >= 2 (1 rung is a search without halving)", fix)
    return {"eta": eta, "rungs": rungs}


def halving_config(h: dict[str, int], space: SearchSpace, budget: int) -> dict[str, Any]:
    """Validate ``h`` for ``space`` and a search of ``budget`` models; returns it with ``option``/``budgets``."""
    eta, rungs = h["eta"], h["rungs"]
    opt = space.budget_option
    if opt is None:
        raise ConfigError(
            "--halving",
            f"{eta},{rungs}",
            f"a space whose trials train for a step budget (space {space.name!r} has none)",
            "use --space cnn, or drop --halving",
        )
    full = space.full_budget()
    div = eta ** (rungs - 1)
    if full % div:
        lower = full - full % div
        raise ConfigError(
            f"space option {opt}",
            full,
            f"a budget divisible by eta**(rungs-1) = {div} (rungs train {opt}/{div}, ..., {opt})",
            f"use --set {opt}={lower or div} or {lower + div}, or fewer rungs",
        )
    if budget < div:
        raise ConfigError(
            "--budget",
            budget,
            f"at least eta**(rungs-1) = {div} models so that the last rung gets one",
            f"use --budget {div} or more, or fewer rungs",
        )
    return {
        "eta": eta,
        "rungs": rungs,
        "option": opt,
        "budgets": [full // eta ** (rungs - 1 - r) for r in range(rungs)],
    }


def rung_sizes(n: int, eta: int, rungs: int) -> list[int]:
    """Models evaluated per rung for ``n`` proposals: ``[n, n // eta, n // eta**2, ...]`` (failures permitting)."""
    return [n // eta**r for r in range(rungs)]


def select(candidates: list[Trial] | list[Promotion], k: int) -> list[int]:
    """The trial indices of the best ``k`` successful candidates (score desc, earlier trial first)."""
    ok = sorted((c for c in candidates if c.ok), key=lambda c: (-(c.score or 0.0), c.trial))
    return sorted(c.trial for c in ok[:k])


def space_at(space: SearchSpace, budget: int) -> SearchSpace:
    """``space`` with its budget option set to ``budget`` (cached per process for registered spaces)."""
    opt = space.budget_option
    assert opt is not None
    options = {**space.options, opt: budget}
    if space.name in SPACES and f"{type(space).__module__}:{type(space).__name__}" == SPACES[space.name]:
        from openmindspore.automl.spaces import space_cached

        return space_cached(space.name, space.dataset, options)
    return type(space)(space.dataset, **options)


def load_promotions(out_dir: str | Path) -> list[Promotion]:
    """``promotions.jsonl`` of a search directory (empty without one; a truncated last line is dropped)."""
    p = Path(out_dir) / "promotions.jsonl"
    if not p.is_file():
        return []
    lines = p.read_text().splitlines()
    out = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(Promotion.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError) as e:
            if n == len(lines) - 1:
                break
            raise ConfigError(f"{p}:{n + 1}", line[:80], f"a promotion record ({e})") from None
    return out
