"""Classification: cross-entropy on logits ``[N, C]``, accuracy and mean log-loss, labels + probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.train.tasks.base import Task

if TYPE_CHECKING:
    from openmindspore.data import Dataset

__all__ = ["Classification", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class _CrossEntropySum(nn.Cell):
    def construct(self, logits: Tensor, y: Tensor) -> Tensor:
        if isinstance(logits, (tuple, list)):  # a model returning (logits, ...), e.g. ViT
            logits = logits[0]
        return ops.cross_entropy(logits, y, reduction="sum")


class Classification(Task):
    """Integer labels ``y [N]`` in ``0..C-1``; the model returns logits ``[N, C]``."""

    name = "classification"

    def output_size(self, data: Dataset) -> int:
        return int(data.num_classes)

    def loss_cell(self) -> nn.Cell:
        return _CrossEntropySum()

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        if len(y) == 0:
            return {"accuracy": float("nan"), "loss": float("nan")}
        logp = log_softmax(outputs.astype(np.float64))
        return {
            "accuracy": float((outputs.argmax(axis=1) == y).mean()),
            "loss": float(-logp[np.arange(len(y)), y].mean()),
        }

    def predictions(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "label": outputs.argmax(axis=1).astype(np.int64),
            "probabilities": np.exp(log_softmax(outputs.astype(np.float64))).astype(np.float32),
        }

    def _wanted(self, want: int, data: Dataset) -> str:
        return f"{want} logits, one per class of {data.name} ({want} classes)"

    def _fix(self, want: int) -> str:
        return (
            f"make its last layer produce {want} outputs (a constructor argument named num_classes "
            f"is filled with {want} when init_args does not set it)"
        )
