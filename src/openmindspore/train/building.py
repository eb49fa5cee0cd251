"""Building a run's model from its config (or a cell / factory given in Python) and checking it fits the data.

The model gets what the data knows (``num_classes`` — the task's output size —, ``num_outputs``,
``input_shape``, ``in_features`` = the flattened input size, ``in_channels`` for images) for each
constructor parameter of that name that ``init_args`` leaves unset. A user's cell is built right after
``mindspore.set_seed(seed)``, so every process (each elastic worker, a replacement, a resumed run) builds
the same initial parameters. A probe forward pass on two training rows then checks the output fits the
task, before anything is written.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import mindspore as ms
from mindspore import nn

from openmindspore.data import Dataset, dataset_label
from openmindspore.errors import ConfigError
from openmindspore.models import create_model
from openmindspore.models.registry import build_object, create_user_model
from openmindspore.train.config import TrainConfig
from openmindspore.train.tasks import Task

__all__ = ["build_model", "check_model", "describe_model", "model_arguments", "provided_args"]

log = logging.getLogger(__name__)


def describe_model(model_cfg: dict[str, Any]) -> str:
    """The config's name for the model: its registered name, class path or Python object."""
    return str(model_cfg.get("name") or model_cfg.get("class_path") or model_cfg.get("python_object"))


def model_arguments(input_shape: tuple[int, ...] | list[int], outputs: int) -> dict[str, Any]:
    """What a model with per-sample ``input_shape`` and ``outputs`` outputs is given (see the module doc)."""
    shape = tuple(int(s) for s in input_shape)
    args: dict[str, Any] = {"num_classes": outputs, "num_outputs": outputs, "input_shape": shape}
    args["in_features"] = int(math.prod(shape))
    if len(shape) == 3:
        args["in_channels"] = shape[0]
    return args


def provided_args(data: Dataset, task: Task) -> dict[str, Any]:
    return model_arguments(data.input_shape, task.output_size(data))


def build_model(cfg: TrainConfig, data: Dataset, task: Task, model: Any = None) -> nn.Cell:
    """The run's ``nn.Cell``: ``model`` when given (a cell, or a factory), else from ``cfg.model``."""
    spec = cfg.model
    if model is not None or "python_object" in spec:
        if model is None:
            raise ConfigError(
                "model",
                spec["python_object"],
                "the model object this run was trained with",
                "this run's model was given in Python: pass model= to resume / evaluate it",
            )
        ms.set_seed(cfg.seed)
        return build_object(model, provided_args(data, task))
    if "class_path" in spec:
        ms.set_seed(cfg.seed)
        cell = create_user_model(spec["class_path"], spec.get("init_args") or {}, provided_args(data, task))
        _warn_unkeyed_dropout(cell, spec["class_path"])
        return cell
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return create_model(
        spec["name"],
        input_shape=data.input_shape,
        num_classes=task.output_size(data),
        seed=kwargs.pop("seed", cfg.seed),
        **kwargs,
    )


def _warn_unkeyed_dropout(cell: nn.Cell, name: str) -> None:
    if any(type(c) is nn.Dropout for _, c in cell.cells_and_names()):
        log.warning(
            "%s uses mindspore.nn.Dropout, whose masks come from MindSpore's global RNG: a resumed or "
            "recovered run will not be bitwise the uninterrupted one; use openmindspore.models.Dropout "
            "(keyed by seed, step and sample id) for exactness",
            name,
        )


def check_model(model: nn.Cell, data: Dataset, task: Task, model_cfg: dict[str, Any]) -> None:
    """Run two training rows through the model (inference mode) and check the output fits the task."""
    name = describe_model(model_cfg)
    model.set_train(False)
    try:
        out = model(*task.inputs(data.x_train[:2]))
    except Exception as e:  # noqa: BLE001 - the user's forward pass: one line, traceback at debug level
        log.debug("probe forward of %s failed", name, exc_info=True)
        msg = str(e).strip().splitlines()
        raise ConfigError(
            "model",
            name,
            f"a model taking inputs of shape [batch, {', '.join(map(str, data.input_shape))}] "
            f"({dataset_label(data.name)})",
            f"its forward pass raised {type(e).__name__}: {msg[0] if msg else ''}"[:400],
        ) from None
    task.check_output(task.output_array(out), data, name)
