"""The compiled training step of a task whose targets come from the model's own predictions (detection: the
Hungarian matching runs on the host), with ONE forward pass.

The generic compiled step needs its targets before it starts, so such a task ran a compiled forward for the
matching and then the compiled ``value_and_grad``, which ran the forward again: two forwards and a backward
(YOLOS-tiny at 512x672: 1.95 CPU s per step). Here the forward runs once under :func:`mindspore.vjp` (which
keeps what the backward needs), the task builds its targets from those outputs on the host
(``task.match_outputs``), a small compiled graph gives the loss and its gradient with respect to the outputs,
and the vjp carries that gradient back to the parameters (1.48 CPU s; the same loss and gradients, bit for
bit: measured, and tested in tests/models/test_yolos_train_step.py).
"""

from __future__ import annotations

from typing import Any

import mindspore as ms
from mindspore import Tensor, nn

__all__ = ["MatchedStep"]


class MatchedStep:
    """``step(x, batch, scale) -> (loss, parameter gradients)`` of ``sum(loss(model(x)[:n], *targets) * scale)``
    where ``targets = task.match_outputs(outputs as numpy, batch).targets``; ``n = task.matched_outputs``."""

    def __init__(self, model: nn.Cell, loss: nn.Cell, params: list, task: Any) -> None:
        self.model, self.params, self.task = model, list(params), task
        n = int(task.matched_outputs)

        def forward(x: Tensor) -> tuple:
            return model(x)[:n]

        def total(*args: Tensor) -> Tensor:  # (outputs..., scale, targets...): outputs as separate inputs
            return (loss(args[:n], *args[n + 1 :]) * args[n]).sum()

        self._forward = ms.jit(forward)
        self._loss_grad = ms.jit(ms.value_and_grad(total, tuple(range(n))))

    def __call__(self, x: Tensor, batch: Any, scale: Tensor) -> tuple[Tensor, tuple]:
        self.model.set_train(True)
        outputs, vjp_fn = ms.vjp(self._forward, x, weights=self.params)
        matched = self.task.match_outputs(tuple(o.asnumpy() for o in outputs), batch)
        loss, d_outputs = self._loss_grad(*outputs, scale, *matched.targets)
        return loss, vjp_fn(tuple(d_outputs))[1]
