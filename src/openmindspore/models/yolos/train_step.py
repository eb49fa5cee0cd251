"""A compiled (``ms.jit``) YOLOS training step: forward graph, host Hungarian matching, then one graph for
forward + backward + gradient clipping + optimizer update.

MindSpore PyNative on CPU is dominated by per-op overhead and host syncs, so the eager step of
:func:`~openmindspore.models.yolos.loss.detr_loss` is slow. Matching needs the current predictions on
the host (scipy), so a step is two graph launches:

1. ``forward(x) -> (logits, boxes)`` (compiled, no gradient), then ``hungarian_match`` on the host;
2. the matches are packed into *dense, fixed-shape* arrays (:func:`pack_matches`) and the compiled
   ``value_and_grad`` of :func:`dense_detr_loss` runs with the optimizer inside the same graph.

:func:`dense_detr_loss` computes the reference DETR loss (the value of ``detr_loss`` for the same
matching, tested) without gathers: every query carries a one-hot class target with its CE weight and a
box target with a 0/1 mask (unmatched queries get a dummy, well-formed box and mask 0, so their L1 and
GIoU terms and gradients are exactly zero). Shapes depend only on ``(batch, queries, classes)``, so one
compilation serves the whole run.

MindSpore 2.10 pitfalls avoided here: the learning-rate schedule is a per-step array inside the optimizer
(``Parameter.set_data`` on ``opt.learning_rate`` is not seen by a compiled graph); no ``ops.pad`` / ``amax``
in the graph; the loss cell does not prefix parameter names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.errors import ConfigError
from openmindspore.models.yolos.loss import DetrLossWeights, hungarian_match

__all__ = ["pack_matches", "dense_detr_loss", "DetrTrainLoss", "DetrTrainStep", "optimizer_for", "DUMMY_BOX"]

DUMMY_BOX = (0.5, 0.5, 0.5, 0.5)  # target of unmatched queries (masked out); keeps GIoU finite


def pack_matches(
    indices: Sequence[tuple[np.ndarray, np.ndarray]], targets: Sequence[dict], num_queries: int, w: DetrLossWeights
) -> tuple[np.ndarray, ...]:
    """Dense loss inputs for a batch of ``B`` images with ``Q`` queries and ``C+1`` classes:

    ``onehot [B, Q, C+1]``, ``ce_weight [B, Q]`` (1, or ``eos_coefficient`` for no-object), ``box_target
    [B, Q, 4]`` (cxcywh; :data:`DUMMY_BOX` where unmatched), ``box_mask [B, Q]`` (1 where matched) and
    ``norms [2] = (1 / sum(ce_weight), 1 / num_boxes)`` — all float32.
    """
    bsz, ncls = len(targets), w.num_labels + 1
    cls = np.full((bsz, num_queries), w.num_labels, np.int64)
    box = np.broadcast_to(np.asarray(DUMMY_BOX, np.float32), (bsz, num_queries, 4)).copy()
    mask = np.zeros((bsz, num_queries), np.float32)
    for b, ((qi, tj), t) in enumerate(zip(indices, targets)):
        labels = np.asarray(t["class_labels"], np.int64).reshape(-1)
        cls[b, qi] = labels[tj]
        box[b, qi] = np.asarray(t["boxes"], np.float32).reshape(-1, 4)[tj]
        mask[b, qi] = 1.0
    class_w = np.ones(ncls, np.float32)
    class_w[-1] = w.eos_coefficient
    ce_w = class_w[cls]
    num_boxes = max(float(sum(np.asarray(t["class_labels"]).size for t in targets)), 1.0)
    norms = np.asarray([1.0 / float(ce_w.sum()), 1.0 / num_boxes], np.float32)
    return np.eye(ncls, dtype=np.float32)[cls], ce_w, box, mask, norms


def _xyxy(b: Tensor) -> Tensor:
    return ops.concat((b[..., :2] - 0.5 * b[..., 2:], b[..., :2] + 0.5 * b[..., 2:]), -1)


def dense_detr_loss(
    logits: Tensor,
    boxes: Tensor,
    onehot: Tensor,
    ce_weight: Tensor,
    box_target: Tensor,
    box_mask: Tensor,
    norms: Tensor,
    w: DetrLossWeights,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(total, loss_ce, loss_bbox, loss_giou)`` from :func:`pack_matches` inputs; graph-safe.

    ``logits [B, Q, C+1]``, ``boxes [B, Q, 4]`` (cxcywh in [0, 1]); equal to ``detr_loss`` for the same matches.
    """
    nll = -(ops.log_softmax(logits, -1) * onehot).sum(-1)  # [B, Q]
    loss_ce = (nll * ce_weight).sum() * norms[0]
    loss_bbox = (ops.abs(boxes - box_target).sum(-1) * box_mask).sum() * norms[1]
    a, b = _xyxy(boxes), _xyxy(box_target)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    wh = ops.clamp(ops.minimum(a[..., 2:], b[..., 2:]) - ops.maximum(a[..., :2], b[..., :2]), min=0.0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    wh2 = ops.clamp(ops.maximum(a[..., 2:], b[..., 2:]) - ops.minimum(a[..., :2], b[..., :2]), min=0.0)
    enclose = wh2[..., 0] * wh2[..., 1]
    giou = inter / union - (enclose - union) / enclose
    loss_giou = ((1.0 - giou) * box_mask).sum() * norms[1]
    total = loss_ce + w.bbox_loss_coefficient * loss_bbox + w.giou_loss_coefficient * loss_giou
    return total, loss_ce, loss_bbox, loss_giou


class DetrTrainLoss(nn.Cell):
    """``construct(pixel_values, onehot, ce_weight, box_target, box_mask, norms) -> total loss`` (scalar)."""

    def __init__(self, model: nn.Cell, weights: DetrLossWeights) -> None:
        super().__init__(auto_prefix=False)  # keep the model's parameter names
        self.model, self.w = model, weights

    def construct(
        self, x: Tensor, onehot: Tensor, ce_weight: Tensor, box_target: Tensor, box_mask: Tensor, norms: Tensor
    ) -> Tensor:
        logits, boxes = self.model(x)[:2]
        return dense_detr_loss(logits, boxes, onehot, ce_weight, box_target, box_mask, norms, self.w)[0]


def _has_dropout(model: nn.Cell) -> bool:
    cfg = getattr(model, "config", None)
    return bool(cfg is not None and (cfg.hidden_dropout_prob > 0 or cfg.attention_probs_dropout_prob > 0))


class DetrTrainStep:
    """One DETR training step of ``model`` with ``optimizer`` (a MindSpore optimizer over the model's
    trainable parameters, updated in place) and global-norm gradient clipping (``grad_clip <= 0``: off).

    ``compiled=True`` runs the two graphs described in the module docstring; ``False`` runs the same
    loss op by op (PyNative, the reference for tests). Models with dropout must use ``compiled=False``.
    """

    def __init__(
        self,
        model: nn.Cell,
        weights: DetrLossWeights,
        optimizer: nn.Optimizer,
        grad_clip: float = 0.0,
        compiled: bool = True,
    ) -> None:
        if compiled and _has_dropout(model):
            raise ConfigError(
                "train.compile",
                True,
                "false for models with dropout",
                "set train.compile: false or the dropout probabilities to 0",
            )
        self.model, self.w, self.opt = model, weights, optimizer
        self.clip, self.compiled = float(grad_clip), bool(compiled)
        self.loss_cell = DetrTrainLoss(model, weights)
        grad_fn = ms.value_and_grad(self.loss_cell, None, optimizer.parameters)

        def forward(x: Tensor) -> tuple:
            return self.model(x)[:2]

        def grads(*inputs: Tensor) -> tuple:
            return grad_fn(*inputs)

        def train(*inputs: Tensor) -> Tensor:
            loss, g = grad_fn(*inputs)
            if self.clip > 0:
                g = ops.clip_by_global_norm(g, self.clip)
            self.opt(g)
            return loss

        wrap = ms.jit if self.compiled else (lambda f: f)
        self._forward, self._grads, self._train = wrap(forward), wrap(grads), wrap(train)

    def inputs(self, x: Tensor, targets: Sequence[dict]) -> tuple[Tensor, ...]:
        """Forward pass, host matching, packed loss inputs ``(x, onehot, ce_weight, box_target, box_mask, norms)``."""
        self.model.set_train(True)
        logits, boxes = self._forward(x)
        lg, bx = logits.asnumpy(), boxes.asnumpy()
        if lg.shape[-1] != self.w.num_labels + 1:
            raise ConfigError("logits.shape[-1]", lg.shape[-1], f"num_labels + 1 = {self.w.num_labels + 1}")
        idx = hungarian_match(lg, bx, targets, self.w)
        return (x, *(Tensor(a) for a in pack_matches(idx, targets, lg.shape[1], self.w)))

    def value_and_grad(self, x: Tensor, targets: Sequence[dict]) -> tuple[Tensor, tuple]:
        """Loss and gradients w.r.t. ``optimizer.parameters`` (no update)."""
        return self._grads(*self.inputs(x, targets))

    def __call__(self, x: Tensor, targets: Sequence[dict]) -> float:
        """One optimisation step; returns the loss before the update."""
        return float(self._train(*self.inputs(x, targets)).asnumpy())


def optimizer_for(model: nn.Cell, lr_schedule: Sequence[float], weight_decay: float) -> Any:
    """``nn.AdamWeightDecay`` with a per-step learning-rate array (graph-safe) and no decay on biases,
    norms, embeddings and tokens."""
    params = model.trainable_params()

    def decays(p: Any) -> bool:
        return p.ndim >= 2 and "embeddings" not in p.name and "token" not in p.name

    groups = [
        {"params": [p for p in params if decays(p)], "weight_decay": float(weight_decay)},
        {"params": [p for p in params if not decays(p)], "weight_decay": 0.0},
    ]
    lr = Tensor(np.asarray(lr_schedule, np.float32))
    return nn.AdamWeightDecay([g for g in groups if g["params"]], learning_rate=lr)
