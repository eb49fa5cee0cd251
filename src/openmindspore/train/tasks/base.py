"""The task seam: what differs between learning problems, behind one interface the trainer drives.

A task supplies the **loss** (a graph-safe ``nn.Cell`` summing the loss over a batch), the **collation**
(training rows -> model inputs and loss targets), the **metrics** (host-side numpy, over a whole split),
the check that a model's output fits the data, and the **predictions** a served or evaluated model
returns. Everything else — the loop, schedule, optimizer, checkpoints, exact resume, elastic
data-parallel training and recovery, ``--max-steps``, ``--seed``, progress — is the trainer's and is the
same for every task.

How a step uses a task (single process or one rank of ``--workers N``)::

    task.bind(model, data)                           # once, after the model is built and checked
    batch = task.collate(x_rows, y_rows)            # numpy -> Batch(inputs, targets) of Tensors
    batch = task.match(model, batch)                 # host-side step needing predictions (default: none)
    loss, grads = value_and_grad(sum(loss_cell(model(*batch.inputs), *batch.targets) * scale))

``scale`` is ``task.loss_scale(global_targets)`` (default ``1 / len(global_targets)``): each rank returns
its shard's *sum* times the global scale, so summing over ranks gives the exact global mean whatever the
world size. A loss made of terms normalised differently returns a vector of partial sums from its loss
cell and one scale per term. The trainer compiles the step (``ms.jit``) when the model is graph-safe,
whatever the number of targets. The detection task (``tasks/detection.py``): ``collate`` keeps the
per-image boxes on the host (and flips images, keyed); ``match`` runs a no-grad forward and the Hungarian
matching (scipy) and packs the matches into dense, fixed-shape target arrays; ``loss_cell`` returns the
DETR loss's two sums; ``loss_scale`` their normalisers over the global batch; ``metrics`` is COCO mAP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from mindspore import Tensor, nn

from openmindspore.errors import ConfigError

if TYPE_CHECKING:
    from openmindspore.data import Dataset

__all__ = ["Batch", "Task"]


@dataclass
class Batch:
    """Model inputs and loss targets of one (shard of a) batch; ``host`` carries what stays in numpy."""

    inputs: tuple[Tensor, ...]
    targets: tuple[Tensor, ...]
    host: Any = None


class Task(ABC):
    """One kind of learning problem (see the module docstring)."""

    name: ClassVar[str]
    num_inputs: ClassVar[int] = 1  # tensors in Batch.inputs (the compiled step supports one input, one target)

    @abstractmethod
    def output_size(self, data: Dataset) -> int:
        """Outputs per sample a model must produce for ``data`` (built-in models are built with it)."""

    @abstractmethod
    def loss_cell(self) -> nn.Cell:
        """``cell(outputs, *targets) -> scalar``: the loss *summed* over the batch; graph-safe."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Metrics of a whole split from the model's outputs and the targets."""

    @abstractmethod
    def predictions(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """What a served or evaluated model returns for its outputs (e.g. ``label`` and ``probabilities``)."""

    def bind(self, model: nn.Cell, data: Dataset) -> None:
        """Take what the task needs from the built, checked model and the data (called once, before
        :meth:`loss_cell`; e.g. detection's loss weights). Default: nothing."""
        return None

    def output_array(self, out: Any) -> np.ndarray:
        """A forward pass's result as the one array :meth:`metrics`, :meth:`predictions` and
        :meth:`check_output` take: by default its first tensor (the logits of ``(logits, ...)``)."""
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.asnumpy() if hasattr(out, "asnumpy") else np.asarray(out)

    def inputs(self, x: np.ndarray) -> tuple[Tensor, ...]:
        """Model inputs for rows ``x`` (training, evaluation and the start-up check all use this)."""
        return (Tensor(x),)

    def collate(self, x: np.ndarray, y: np.ndarray) -> Batch:
        """Training rows -> tensors (one input, one target by default)."""
        return Batch(self.inputs(x), (Tensor(y),))

    #: > 0: ``match`` builds the targets from the first ``matched_outputs`` model outputs alone, through
    #: ``match_outputs(outputs as numpy, batch) -> Batch`` (the compiled step then runs one forward:
    #: :mod:`openmindspore.train.matched`)
    matched_outputs = 0

    def match(self, model: nn.Cell, batch: Batch) -> Batch:
        """A host-side step between collation and the loss that needs the current predictions."""
        return batch

    def loss_scale(self, global_targets: np.ndarray) -> float | np.ndarray:
        """What the loss cell's sum is multiplied by, from the targets of the whole global batch: a number,
        or one per entry of a loss cell returning a vector of partial sums."""
        return 1.0 / len(global_targets)

    def check_output(self, out: np.ndarray, data: Dataset, model: str) -> None:
        """Fail at start-up, naming both sizes, when the model's output does not fit the task."""
        want = self.output_size(data)
        got = tuple(int(g) for g in out.shape)
        if len(got) == 2 and got[1] == want:
            return
        returns = f"it returns {got[1]} per sample" if len(got) == 2 else f"it returns an output of shape {list(got)}"
        raise ConfigError(
            "model",
            model,
            f"{self._wanted(want, data)} per sample (an output of shape [batch, {want}])",
            f"{returns}; {self._fix(want)}",
        )

    def _wanted(self, want: int, data: Dataset) -> str:
        return f"{want} outputs"

    def _fix(self, want: int) -> str:
        return f"make its last layer produce {want} outputs"
