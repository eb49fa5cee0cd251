"""Single-process training: config, exact TrainState, checkpoints, runs; one trainer for every task
(``train.tasks``), for registered models and the user's own cells (``train.building``, ``train.usercode``).

The names below load on first use (PEP 562), so importing a light submodule (``train.checkpoint``,
``train.isolated``) does not pull MindSpore into a process that never trains.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openmindspore.train.checkpoint import RunDir
    from openmindspore.train.config import OptimizerConfig, TrainConfig, config_from_dict, load_config
    from openmindspore.train.run import evaluate_run, resume, train
    from openmindspore.train.state import TrainState, params_sha256
    from openmindspore.train.trainer import Trainer

_WHERE = {
    "RunDir": "checkpoint",
    "OptimizerConfig": "config",
    "TrainConfig": "config",
    "config_from_dict": "config",
    "load_config": "config",
    "evaluate_run": "run",
    "resume": "run",
    "train": "run",
    "TrainState": "state",
    "params_sha256": "state",
    "Trainer": "trainer",
}

__all__ = [
    "RunDir",
    "OptimizerConfig",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "evaluate_run",
    "resume",
    "train",
    "TrainState",
    "params_sha256",
    "Trainer",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
