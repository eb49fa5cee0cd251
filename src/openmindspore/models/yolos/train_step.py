"""The dense DETR loss of a compiled YOLOS training step: host Hungarian matching packed into fixed-shape
targets, and a graph-safe loss over them.

MindSpore PyNative on CPU is dominated by per-op overhead and host syncs, so the eager step of
:func:`~openmindspore.models.yolos.loss.detr_loss` is slow. Matching needs the current predictions on
the host (scipy), so a training step (the ``detection`` task of the one trainer) is two graph launches:

1. ``forward(x) -> (logits, boxes)`` (compiled, no gradient), then ``hungarian_match`` on the host;
2. the matches are packed into *dense, fixed-shape* arrays (:func:`pack_matches`) and the trainer's
   compiled ``value_and_grad`` of :class:`DetrLossSums` runs; the trainer's optimizer applies it.

:func:`dense_detr_loss` computes the reference DETR loss (the value of ``detr_loss`` for the same
matching, tested) without gathers: every query carries a one-hot class target with its CE weight and a
box target with a 0/1 mask (unmatched queries get a dummy, well-formed box and mask 0, so their L1 and
GIoU terms and gradients are exactly zero). Shapes depend only on ``(batch, queries, classes)``, so one
compilation serves the whole run. For data-parallel training :class:`DetrLossSums` returns the two
*sums* that DETR normalises differently (the weighted cross-entropy, and the box terms); the trainer
scales them by :func:`detr_norms` of the *global* batch, so a sum over workers is the loss of the whole
batch at any world size. No ``ops.pad`` / ``amax`` in the graph (MindSpore 2.10 pitfalls).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.models.yolos.loss import DetrLossWeights

__all__ = ["pack_matches", "dense_detr_loss", "dense_detr_sums", "detr_norms", "DetrLossSums", "DUMMY_BOX"]

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


def dense_detr_sums(
    logits: Tensor, boxes: Tensor, onehot: Tensor, ce_weight: Tensor, box_target: Tensor, box_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Un-normalised ``(weighted CE sum, L1 sum, (1 - GIoU) sum)`` over the batch; graph-safe.

    ``logits [B, Q, C+1]``, ``boxes [B, Q, 4]`` (cxcywh in [0, 1]), the rest from :func:`pack_matches`."""
    nll = -(ops.log_softmax(logits, -1) * onehot).sum(-1)  # [B, Q]
    ce = (nll * ce_weight).sum()
    l1 = (ops.abs(boxes - box_target).sum(-1) * box_mask).sum()
    a, b = _xyxy(boxes), _xyxy(box_target)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    wh = ops.clamp(ops.minimum(a[..., 2:], b[..., 2:]) - ops.maximum(a[..., :2], b[..., :2]), min=0.0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    wh2 = ops.clamp(ops.maximum(a[..., 2:], b[..., 2:]) - ops.minimum(a[..., :2], b[..., :2]), min=0.0)
    enclose = wh2[..., 0] * wh2[..., 1]
    giou = inter / union - (enclose - union) / enclose
    return ce, l1, ((1.0 - giou) * box_mask).sum()


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
    """``(total, loss_ce, loss_bbox, loss_giou)`` from :func:`pack_matches` inputs; graph-safe; equal to
    ``detr_loss`` for the same matches."""
    ce, l1, giou = dense_detr_sums(logits, boxes, onehot, ce_weight, box_target, box_mask)
    loss_ce, loss_bbox, loss_giou = ce * norms[0], l1 * norms[1], giou * norms[1]
    total = loss_ce + w.bbox_loss_coefficient * loss_bbox + w.giou_loss_coefficient * loss_giou
    return total, loss_ce, loss_bbox, loss_giou


def detr_norms(box_counts: np.ndarray, num_queries: int, eos_coefficient: float) -> np.ndarray:
    """``float32 [2] = (1 / sum of CE weights, 1 / number of boxes)`` of a batch whose images hold
    ``box_counts`` objects: the normalisers :func:`pack_matches` computes from its matches (each image's
    ``min(n, Q)`` matched queries weigh 1, the others ``eos_coefficient``), from the counts alone."""
    n = np.asarray(box_counts, np.int64).reshape(-1)
    matched = np.minimum(n, num_queries)
    ce_w = matched.sum() + eos_coefficient * (num_queries * len(n) - matched.sum())
    return np.asarray([1.0 / float(ce_w), 1.0 / max(float(n.sum()), 1.0)], np.float32)


class DetrLossSums(nn.Cell):
    """``construct(outputs, onehot, ce_weight, box_target, box_mask) -> [2]``: the weighted CE sum and
    ``bbox_coef * L1 sum + giou_coef * (1 - GIoU) sum`` of the batch; ``outputs = (logits, boxes, ...)``.
    Times :func:`detr_norms` of the global batch, their sum is the DETR loss."""

    def __init__(self, weights: DetrLossWeights) -> None:
        super().__init__()
        self.bbox_coef, self.giou_coef = weights.bbox_loss_coefficient, weights.giou_loss_coefficient

    def construct(
        self, outputs: tuple, onehot: Tensor, ce_weight: Tensor, box_target: Tensor, box_mask: Tensor
    ) -> Tensor:
        ce, l1, giou = dense_detr_sums(outputs[0], outputs[1], onehot, ce_weight, box_target, box_mask)
        return ops.stack((ce, self.bbox_coef * l1 + self.giou_coef * giou))
