"""Single-process training: config, exact TrainState, checkpoints, runs; one trainer for every task
(``train.tasks``), for registered models and the user's own cells (``train.building``, ``train.usercode``)."""

from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import OptimizerConfig, TrainConfig, config_from_dict, load_config
from openmindspore.train.run import evaluate_run, resume, train
from openmindspore.train.state import TrainState, params_sha256
from openmindspore.train.trainer import Trainer

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
