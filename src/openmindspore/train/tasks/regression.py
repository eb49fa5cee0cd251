"""Regression: squared error on one output per sample, MSE and R^2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mindspore import Tensor, nn

from openmindspore.errors import ConfigError
from openmindspore.train.tasks.base import Task

if TYPE_CHECKING:
    from openmindspore.data import Dataset

__all__ = ["Regression"]


class _SquaredErrorSum(nn.Cell):
    def construct(self, out: Tensor, y: Tensor) -> Tensor:
        if isinstance(out, (tuple, list)):  # a model returning (prediction, ...)
            out = out[0]
        return ((out.reshape(-1) - y) ** 2).sum()


class Regression(Task):
    """Float targets ``y [N]``; the model returns ``[N, 1]`` (or ``[N]``)."""

    name = "regression"

    def output_size(self, data: Dataset) -> int:
        return 1

    def loss_cell(self) -> nn.Cell:
        return _SquaredErrorSum()

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        if len(y) == 0:
            return {"mse": float("nan"), "r2": float("nan")}
        pred = outputs.reshape(-1)
        mse = float(((pred - y) ** 2).mean())
        return {"mse": mse, "r2": float(1.0 - mse / max(float(y.var()), 1e-12))}

    def predictions(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        return {"prediction": outputs.reshape(len(outputs), 1).astype(np.float32)}

    def check_output(self, out: np.ndarray, data: Dataset, model: str) -> None:
        if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
            return
        raise ConfigError(
            "model",
            model,
            f"one output per sample for regression, i.e. [batch, 1] (it returns {list(out.shape)})",
            "make its last layer produce 1 output",
        )
