"""Elastic, fault-tolerant data-parallel training on the engine, with a pluggable collective backend
(:mod:`openmindspore.elastic.comm`: shared memory by default, MindSpore's MCCL as an option).

Attributes are imported lazily so that light users (``openmindspore.elastic.comm`` in a worker or a test
process) do not pay for the driver's imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["ElasticTrainer", "ElasticOptions", "ResolvedOptions", "Fault", "parse_fault", "valid_world_sizes"]

_WHERE = {
    "ElasticTrainer": "openmindspore.elastic.driver",
    "ElasticOptions": "openmindspore.elastic.options",
    "ResolvedOptions": "openmindspore.elastic.options",
    "Fault": "openmindspore.elastic.faults",
    "parse_fault": "openmindspore.elastic.faults",
    "valid_world_sizes": "openmindspore.elastic.options",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'openmindspore.elastic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
