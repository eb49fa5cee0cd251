"""What a served classifier or regressor answers: the OIP output tensors made from the model's raw output.

=================  =======  ===========  =========================================================
output             type     per-sample   meaning
=================  =======  ===========  =========================================================
``logits``         FP32     ``[C]``      the model's output (classification)
``label``          INT64    ``[]``       the predicted class index (argmax of ``logits``)
``class_name``     BYTES    ``[]``       the predicted class's name, as in the training files (runs on
                                         the user's files: CSV label values, image folder names)
``prediction``     FP32     ``[1]``      the predicted value (regression), in the target's own units
=================  =======  ===========  =========================================================

``label`` is the class *index* for every run (the same contract as runs on a built-in dataset, and the
``class_names`` entry of the model metadata maps it); ``class_name`` carries the name itself, so KServe and
Triton clients need no label file. An output is added by appending its ``TensorSpec`` in ``__init__`` and
its array in ``__call__``; requests name the outputs they want, so clients that do not ask are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from openmindspore.serve.protocol import TensorSpec

__all__ = ["ModelOutputs"]


class ModelOutputs:
    """The output tensors of a ``task`` model with ``num_outputs`` outputs (classes) and optional class names."""

    def __init__(
        self, task: Literal["classification", "regression"], num_outputs: int, class_names: Sequence[str] | None
    ) -> None:
        self.task = task
        self.class_names = None if class_names is None else list(class_names)
        if task == "classification":
            self.specs = [TensorSpec("logits", "FP32", (num_outputs,)), TensorSpec("label", "INT64", ())]
            if self.class_names is not None:
                self.specs.append(TensorSpec("class_name", "BYTES", ()))
                self._names = np.empty(len(self.class_names), dtype=object)
                self._names[:] = [n.encode() for n in self.class_names]
        else:
            self.specs = [TensorSpec("prediction", "FP32", (1,))]

    def __call__(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """The model's output ``float32 [n, C]`` -> ``{output name: (n, ...)}``."""
        out = np.asarray(out, dtype=np.float32)
        if self.task != "classification":
            return {"prediction": out.reshape(len(out), 1)}
        label = out.argmax(axis=1).astype(np.int64)
        answer = {"logits": out, "label": label}
        if self.class_names is not None:
            answer["class_name"] = self._names[label]
        return answer
