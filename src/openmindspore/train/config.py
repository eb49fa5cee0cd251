"""Training configuration: a validated pydantic model, loadable from YAML.

Example (``examples/mnist_cnn.yaml``)::

    dataset: mnist5k
    model: {name: cnn}            # default CNN; or give `layers: [...]`
    optimizer: {name: adam, lr: 0.001}
    batch_size: 64
    epochs: 3                      # or `steps: 500`
    seed: 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from openmindspore.errors import ConfigError
from openmindspore.validation import validate

__all__ = ["OptimizerConfig", "TrainConfig", "load_config", "config_from_dict"]


class OptimizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)


class TrainConfig(BaseModel):
    """One training job. ``steps`` wins over ``epochs`` when both are given."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "mnist5k"
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "cnn"})
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: int = Field(64, gt=0, description="global batch size (constant whatever the world size)")
    epochs: int | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    log_every: int = Field(10, gt=0)
    checkpoint_every: int = Field(100, gt=0, description="disk checkpoint every K steps")
    eval_batch_size: int = Field(500, gt=0)
    augment_shift: int = Field(0, ge=0, le=8, description="random translation of training images, pixels")
    compile: bool = Field(
        True,
        description="compile the training step into a MindSpore graph when the model "
        "supports it (CNN, MLP); false runs it op by op (PyNative)",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if not isinstance(self.model.get("name"), str):
            raise ValueError("model.name is required, e.g. {name: cnn}")
        if self.epochs is None and self.steps is None:
            self.epochs = 1
        return self

    def total_steps(self, num_train: int) -> int:
        """Planned number of optimizer steps (fixes the LR schedule, whatever ``--max-steps`` says)."""
        if self.steps is not None:
            return self.steps
        return (self.epochs or 1) * -(-num_train // self.batch_size)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a training config; every problem is reported at once (:func:`openmindspore.validation.validate`)."""
    if not isinstance(data, dict):
        raise ConfigError("config", data, "a YAML mapping of fields (dataset, model, optimizer, ...)")
    return validate(TrainConfig, data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config", str(path), "an existing YAML file", "check the path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("config", str(path), f"valid YAML (parse error{where}: {getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "a YAML mapping of fields (dataset, model, optimizer, ...)")
    return data


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config; errors name the field, value and fix."""
    return config_from_dict(read_yaml(path))
