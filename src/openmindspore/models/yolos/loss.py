"""DETR set-prediction loss for YOLOS: Hungarian matching (host, scipy) + CE / L1 / GIoU (MindSpore).

Equal to Hugging Face ``ForObjectDetectionLoss`` (``HungarianMatcher`` + ``ImageLoss`` with losses
``labels, boxes, cardinality``):

* matching cost ``bbox_cost * L1(cxcywh) - class_cost * p(class) - giou_cost * GIoU(xyxy)``, solved per
  image with ``scipy.optimize.linear_sum_assignment`` (NaN/inf costs replaced by float32 max);
* ``loss_ce``: cross-entropy over all queries, unmatched ones labelled "no object" (index ``num_labels``),
  class weights 1 except ``eos_coefficient`` for no-object, weighted mean (``sum w*nll / sum w``);
* ``loss_bbox``: L1 of matched boxes / num_boxes; ``loss_giou``: ``1 - GIoU`` of matched pairs / num_boxes
  (``num_boxes = max(total targets, 1)``);
* total ``= loss_ce + bbox_loss_coefficient * loss_bbox + giou_loss_coefficient * loss_giou``;
  ``cardinality_error`` is logged only.

Targets are dicts with ``class_labels [n]`` (int) and ``boxes [n, 4]`` (normalised cxcywh), e.g. the
``labels`` produced by :class:`~openmindspore.models.yolos.processor.YolosImageProcessor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mindspore import Tensor, ops

from openmindspore.errors import ConfigError

__all__ = ["box_cxcywh_to_xyxy", "generalized_box_iou", "hungarian_match", "match_cost", "detr_loss", "DetrLossWeights"]


def box_cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    cx, cy, w, h = np.moveaxis(b, -1, 0)
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def generalized_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise GIoU ``[N, M]`` of xyxy boxes ``a [N, 4]``, ``b [M, 4]``."""
    if (a[:, 2:] < a[:, :2]).any() or (b[:, 2:] < b[:, :2]).any():
        raise ConfigError(
            "boxes",
            "x1 < x0 or y1 < y0",
            "corner-format boxes with x0 <= x1, y0 <= y1",
            "check the box format (cxcywh vs xyxy) and that widths/heights are >= 0",
        )
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None] - inter
    iou = inter / union
    lt2 = np.minimum(a[:, None, :2], b[None, :, :2])
    rb2 = np.maximum(a[:, None, 2:], b[None, :, 2:])
    wh2 = np.clip(rb2 - lt2, 0, None)
    area = wh2[..., 0] * wh2[..., 1]
    return iou - (area - union) / area


class DetrLossWeights:
    """Cost and loss weights (defaults = the reference ``YolosConfig``)."""

    def __init__(
        self,
        num_labels: int,
        class_cost: float = 1.0,
        bbox_cost: float = 5.0,
        giou_cost: float = 2.0,
        bbox_loss_coefficient: float = 5.0,
        giou_loss_coefficient: float = 2.0,
        eos_coefficient: float = 0.1,
    ) -> None:
        if class_cost == 0 and bbox_cost == 0 and giou_cost == 0:
            raise ConfigError("matcher costs", (class_cost, bbox_cost, giou_cost), "not all zero")
        self.num_labels = int(num_labels)
        self.class_cost, self.bbox_cost, self.giou_cost = float(class_cost), float(bbox_cost), float(giou_cost)
        self.bbox_loss_coefficient = float(bbox_loss_coefficient)
        self.giou_loss_coefficient = float(giou_loss_coefficient)
        self.eos_coefficient = float(eos_coefficient)

    @classmethod
    def from_config(cls, cfg: Any) -> DetrLossWeights:
        return cls(
            cfg.num_labels,
            cfg.class_cost,
            cfg.bbox_cost,
            cfg.giou_cost,
            cfg.bbox_loss_coefficient,
            cfg.giou_loss_coefficient,
            cfg.eos_coefficient,
        )


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def match_cost(
    logits: np.ndarray, boxes: np.ndarray, tgt_ids: np.ndarray, tgt_boxes: np.ndarray, w: DetrLossWeights
) -> np.ndarray:
    """Cost matrix ``[Q, T]`` for one image (float32, non-finite values replaced by float32 max)."""
    prob = _softmax(logits.astype(np.float32))
    c_class = -prob[:, tgt_ids]
    c_bbox = np.abs(boxes[:, None, :] - tgt_boxes[None, :, :]).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_giou = -generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(tgt_boxes))
    c = (w.bbox_cost * c_bbox + w.class_cost * c_class + w.giou_cost * c_giou).astype(np.float32)
    big = float(np.finfo(np.float32).max)  # exactly representable in float32: the result stays float32 max
    return np.nan_to_num(c, nan=big, posinf=big, neginf=big)


def hungarian_match(
    logits: np.ndarray, pred_boxes: np.ndarray, targets: Sequence[dict], w: DetrLossWeights
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image ``(query_idx, target_idx)`` int64 arrays (query indices sorted), like the reference."""
    from scipy.optimize import linear_sum_assignment

    logits, pred_boxes = np.asarray(logits, np.float32), np.asarray(pred_boxes, np.float32)
    if len(targets) != logits.shape[0]:
        raise ConfigError("targets", len(targets), f"one target dict per image ({logits.shape[0]})")
    out = []
    for b, t in enumerate(targets):
        ids = np.asarray(t["class_labels"], np.int64).reshape(-1)
        tb = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
        if len(ids) != len(tb):
            raise ConfigError(f"targets[{b}]", (len(ids), len(tb)), "as many class_labels as boxes")
        if len(ids) and (ids.min() < 0 or ids.max() >= w.num_labels):
            raise ConfigError(
                f"targets[{b}].class_labels",
                ids.tolist(),
                f"ids in [0, {w.num_labels})",
                "set num_labels to (largest category id + 1)",
            )
        if len(ids) == 0:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        i, j = linear_sum_assignment(match_cost(logits[b], pred_boxes[b], ids, tb, w))
        out.append((i.astype(np.int64), j.astype(np.int64)))
    return out


def _xyxy(b: Tensor) -> Tensor:
    cx, cy, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return ops.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def _paired_giou(a: Tensor, b: Tensor) -> Tensor:
    """GIoU of matched pairs ``a[i]``, ``b[i]`` (xyxy) -> ``[M]`` (the diagonal of the pairwise matrix)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = ops.clamp(ops.minimum(a[:, 2:], b[:, 2:]) - ops.maximum(a[:, :2], b[:, :2]), min=0.0)
    inter = wh[:, 0] * wh[:, 1]
    union = area_a + area_b - inter
    wh2 = ops.clamp(ops.maximum(a[:, 2:], b[:, 2:]) - ops.minimum(a[:, :2], b[:, :2]), min=0.0)
    enclose = wh2[:, 0] * wh2[:, 1]
    return inter / union - (enclose - union) / enclose


def detr_loss(
    logits: Tensor,
    pred_boxes: Tensor,
    targets: Sequence[dict],
    w: DetrLossWeights,
    indices: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Total loss (scalar Tensor, differentiable w.r.t. ``logits [B, Q, C+1]`` and ``pred_boxes [B, Q, 4]``)
    and a dict of components (``loss_ce``, ``loss_bbox``, ``loss_giou`` Tensors; ``cardinality_error``
    float; ``indices``). Matching runs on the host from the current values unless ``indices`` is given."""
    bsz, nq, ncls = logits.shape
    if ncls != w.num_labels + 1:
        raise ConfigError("logits.shape[-1]", ncls, f"num_labels + 1 = {w.num_labels + 1}")
    lg_np, bx_np = logits.asnumpy(), pred_boxes.asnumpy()
    if indices is None:
        indices = hungarian_match(lg_np, bx_np, targets, w)
    target_classes = np.full((bsz, nq), w.num_labels, dtype=np.int64)
    flat_idx, tgt_boxes = [], []
    for b, ((qi, tj), t) in enumerate(zip(indices, targets)):
        labels = np.asarray(t["class_labels"], np.int64).reshape(-1)
        target_classes[b, qi] = labels[tj]
        flat_idx.append(b * nq + qi)
        tgt_boxes.append(np.asarray(t["boxes"], np.float32).reshape(-1, 4)[tj])
    num_boxes = max(float(sum(len(np.asarray(t["class_labels"]).reshape(-1)) for t in targets)), 1.0)

    class_w = np.ones(ncls, np.float32)
    class_w[-1] = w.eos_coefficient
    onehot = np.eye(ncls, dtype=np.float32)[target_classes]  # [B, Q, C+1]
    weights = class_w[target_classes]  # [B, Q]
    logp = ops.log_softmax(logits, -1)
    nll = -(logp * Tensor(onehot)).sum(-1)
    loss_ce = (nll * Tensor(weights)).sum() / float(weights.sum())

    idx = np.concatenate(flat_idx) if flat_idx else np.zeros(0, np.int64)
    if idx.size:
        src = ops.gather(pred_boxes.reshape(bsz * nq, 4), Tensor(idx.astype(np.int32)), 0)
        tgt = Tensor(np.concatenate(tgt_boxes))
        loss_bbox = ops.abs(src - tgt).sum() / num_boxes
        loss_giou = (1.0 - _paired_giou(_xyxy(src), _xyxy(tgt))).sum() / num_boxes
    else:
        loss_bbox = (pred_boxes * 0.0).sum()
        loss_giou = (pred_boxes * 0.0).sum()
    card_pred = (lg_np.argmax(-1) != ncls - 1).sum(1)
    card_tgt = np.asarray([len(np.asarray(t["class_labels"]).reshape(-1)) for t in targets])
    total = loss_ce + w.bbox_loss_coefficient * loss_bbox + w.giou_loss_coefficient * loss_giou
    return total, {
        "loss_ce": loss_ce,
        "loss_bbox": loss_bbox,
        "loss_giou": loss_giou,
        "cardinality_error": float(np.abs(card_pred - card_tgt).mean()),
        "indices": indices,
    }
