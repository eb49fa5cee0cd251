"""Ablation factors: what switching a modeling choice on or off does to a CNN layer spec.

A *conv block* is a ``conv`` layer plus the ``batchnorm`` and activation layers right after it.
Each factor maps the base spec to its ``off`` and ``on`` versions (levels are applied in the order
the factors are given; the base's own setting of a factor is one of its two levels):

``maxpool``    off: every ``maxpool`` layer removed. on: the base's max-pools; if it has none, a
               2x2 max-pool after each of the first two conv blocks.
``batchnorm``  off: every ``batchnorm`` layer removed. on: a ``batchnorm`` right after every conv
               that lacks one.
``dropout``    off: every ``dropout`` layer removed. on: the base's dropout; if none, a 0.25 dropout
               after the activation of every hidden dense layer (or at the end of the spec).
``gelu``       on: every ReLU becomes GELU. off: every GELU becomes ReLU.
``kernel5``    on: the first conv has a 5x5 kernel. off: a 3x3 kernel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from openmindspore.errors import ConfigError

__all__ = ["Factor", "FACTORS", "get_factor", "apply_levels"]

Spec = list[dict]
_ACTS = ("relu", "gelu", "tanh", "sigmoid", "activation")


@dataclass(frozen=True)
class Factor:
    """A two-level modeling choice: ``apply(spec, on)`` returns the spec at that level."""

    name: str
    on: str  # what "on" does to the base spec, e.g. "max-pooling kept (or 2x2 max-pools added)"
    off: str
    apply: Callable[[Spec, bool], Spec]
    treatment: str = ""  # the named treatment whose phrases ("using max-pooling") answer in words


def _kind(layer: dict) -> str:
    return str(layer.get("fn", "relu")) if layer.get("type") == "activation" else str(layer.get("type"))


def _block_end(spec: Spec, i: int) -> int:
    """Index just after the conv block starting at conv ``i``."""
    j = i + 1
    while j < len(spec) and (spec[j].get("type") == "batchnorm" or spec[j].get("type") in _ACTS):
        j += 1
    return j


def _remove(kind: str) -> Callable[[Spec], Spec]:
    return lambda s: [copy.deepcopy(x) for x in s if x.get("type") != kind]


def _maxpool(spec: Spec, on: bool) -> Spec:
    if not on:
        return _remove("maxpool")(spec)
    if any(x.get("type") == "maxpool" for x in spec):
        return copy.deepcopy(spec)
    out = copy.deepcopy(spec)
    convs = [i for i, x in enumerate(out) if x.get("type") == "conv"][:2]
    for i in reversed(convs):
        out.insert(_block_end(out, i), {"type": "maxpool", "kernel": 2})
    return out


def _batchnorm(spec: Spec, on: bool) -> Spec:
    if not on:
        return _remove("batchnorm")(spec)
    out: Spec = []
    for i, x in enumerate(spec):
        out.append(copy.deepcopy(x))
        if x.get("type") == "conv" and not (i + 1 < len(spec) and spec[i + 1].get("type") == "batchnorm"):
            out.append({"type": "batchnorm"})
    return out


def _dropout(spec: Spec, on: bool) -> Spec:
    if not on:
        return _remove("dropout")(spec)
    if any(x.get("type") == "dropout" for x in spec):
        return copy.deepcopy(spec)
    out = copy.deepcopy(spec)
    dense = [i for i, x in enumerate(out) if x.get("type") == "dense"]
    if not dense:
        return out + [{"type": "dropout", "rate": 0.25}]
    for i in reversed(dense):
        j = i + 1
        while j < len(out) and out[j].get("type") in _ACTS:
            j += 1
        out.insert(j, {"type": "dropout", "rate": 0.25})
    return out


def _gelu(spec: Spec, on: bool) -> Spec:
    src, dst = ("relu", "gelu") if on else ("gelu", "relu")
    return [({"type": dst} if _kind(x) == src else copy.deepcopy(x)) for x in spec]


def _kernel5(spec: Spec, on: bool) -> Spec:
    out = copy.deepcopy(spec)
    for x in out:
        if x.get("type") == "conv":
            x["kernel"] = 5 if on else 3
            break
    return out


FACTORS: dict[str, Factor] = {
    "maxpool": Factor(
        "maxpool", "max-pooling kept (or 2x2 max-pools added)", "max-pool layers removed", _maxpool, "maxpool"
    ),
    "batchnorm": Factor(
        "batchnorm", "batch-norm after every conv", "batch-norm layers removed", _batchnorm, "batchnorm"
    ),
    "dropout": Factor(
        "dropout", "dropout kept (or 0.25 after each hidden dense)", "dropout removed", _dropout, "dropout"
    ),
    "gelu": Factor("gelu", "ReLU replaced by GELU", "GELU replaced by ReLU", _gelu, "gelu"),
    "kernel5": Factor("kernel5", "5x5 first conv", "3x3 first conv", _kernel5, "kernel5_first"),
}


def get_factor(name: str) -> Factor:
    """The factor called ``name`` or a ConfigError listing the valid ones."""
    if name not in FACTORS:
        raise ConfigError("--factor", name, f"one of {sorted(FACTORS)}", "see `oms ablate --help` for what each does")
    return FACTORS[name]


def apply_levels(base: Spec, factors: list[Factor], levels: tuple[int, ...]) -> Spec:
    """The spec of one factorial cell: each factor applied at its level (1 = on), in order."""
    spec = copy.deepcopy(base)
    for f, lv in zip(factors, levels):
        spec = f.apply(spec, bool(lv))
    return spec
