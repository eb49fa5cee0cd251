"""Detection (DETR-style set prediction, e.g. YOLOS): Hungarian matching, the DETR loss and COCO mAP.

The model takes images ``[batch, 3, H, W]`` and returns ``(logits [batch, Q, num_labels + 1], boxes
[batch, Q, 4], ...)`` (normalised cxcywh; the last class is "no object"); the targets are the structured
rows of a detection dataset (:mod:`openmindspore.data.detection`). One step on a worker's shard:

* ``collate``: the images as one tensor (flipped left-right with their boxes when the dataset says
  ``hflip``, keyed by ``(seed, step, sample id)``), the per-image boxes kept on the host;
* ``match``: a no-grad forward (compiled for graph-safe models), the Hungarian matching on the host
  (scipy) and the matches packed into dense, fixed-shape targets (``models/yolos/train_step.pack_matches``);
* ``loss_cell``: the DETR loss's two sums (weighted cross-entropy; ``bbox * L1 + giou * (1 - GIoU)``), which
  the trainer compiles with the backward into one graph for graph-safe models;
* ``loss_scale``: their normalisers over the *global* batch (``1 / sum of CE weights``, ``1 / boxes``), so the
  sum over workers is the DETR loss of the whole batch at any world size;
* ``metrics``: COCO mAP (pycocotools) of every query scored by its best class, in each image's pixels.

The loss weights (``bbox_loss_coefficient``, ``eos_coefficient``, ...) come from the model's config when it
has them (YOLOS), else the reference defaults. Owns, per trainer, what it took from the model at ``bind``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from mindspore import Tensor, nn

from openmindspore.data.detection import unpack_targets
from openmindspore.errors import ConfigError
from openmindspore.models.layers import current_noise_key
from openmindspore.models.yolos.loss import DetrLossWeights, hungarian_match
from openmindspore.models.yolos.train_step import DetrLossSums, detr_norms, pack_matches
from openmindspore.train.config import check_legacy_detection_config  # its home: config checks, no MindSpore
from openmindspore.train.tasks.base import Batch, Task

if TYPE_CHECKING:
    from openmindspore.data import Dataset

__all__ = ["Detection", "check_legacy_detection_config", "hflip"]

_FLIP_STREAM = 11  # the key's last part: flips draw from their own stream, apart from dropout's layers


def hflip(x: np.ndarray, targets: list[dict], flip: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Images ``x [B, C, H, W]`` and their targets with the rows where ``flip`` is true mirrored left-right
    (boxes: ``cx -> 1 - cx``). Returns new arrays; the inputs are unchanged."""
    x = np.where(flip[:, None, None, None], x[..., ::-1], x)
    out = []
    for f, t in zip(flip, targets):
        b = np.array(t["boxes"], np.float32, copy=True)
        if f:
            b[:, 0] = 1.0 - b[:, 0]
        out.append({"class_labels": t["class_labels"], "boxes": b})
    return np.ascontiguousarray(x, np.float32), out


class Detection(Task):
    """Structured targets ``y [N]`` (boxes per image); the model returns ``(logits, boxes, ...)``."""

    name = "detection"

    def __init__(self) -> None:
        self.weights: DetrLossWeights | None = None
        self.num_queries = 0
        self.flip = False
        self._forward: Any = None

    def output_size(self, data: Dataset) -> int:
        return int(data.num_classes)  # num_labels (largest category id + 1); the model adds "no object"

    # ------------------------------------------------------------------ set-up
    def output_array(self, out: Any) -> np.ndarray:
        """``(logits [B, Q, C+1], boxes [B, Q, 4], ...)`` -> ``[B, Q, C+5]`` (logits then boxes)."""
        if isinstance(out, (tuple, list)) and len(out) >= 2:
            lg, bx = (o.asnumpy() if hasattr(o, "asnumpy") else np.asarray(o) for o in out[:2])
            if lg.ndim == 3 and bx.ndim == 3 and lg.shape[:2] == bx.shape[:2]:
                return np.concatenate([lg, bx], axis=-1)
        return super().output_array(out)

    def check_output(self, out: np.ndarray, data: Dataset, model: str) -> None:
        c = int(data.num_classes)
        if out.ndim == 3 and out.shape[-1] == c + 5:
            self.num_queries = int(out.shape[1])
            return
        got = (
            f"its logits have {out.shape[-1] - 4} classes per query"
            if out.ndim == 3
            else f"it returns an output of shape {list(out.shape)}"
        )
        raise ConfigError(
            "model",
            model,
            f"a detector returning (logits [batch, queries, {c + 1}], boxes [batch, queries, 4]): {c} labels of "
            f"{data.name} (category ids 0..{c - 1}) plus 'no object'",
            f"{got}; a registered YOLOS gets num_labels={c} from the data unless the model spec sets it "
            "(remove num_labels), a class_path model gets it as num_classes",
        )

    def bind(self, model: nn.Cell, data: Dataset) -> None:
        import mindspore as ms

        cfg = getattr(model, "config", None)
        c = int(data.num_classes)
        if cfg is not None and hasattr(cfg, "eos_coefficient") and getattr(cfg, "num_labels", c) == c:
            self.weights = DetrLossWeights.from_config(cfg)
        else:
            self.weights = DetrLossWeights(c)
        self.flip = bool(data.meta.get("hflip", False))

        def forward(x: Tensor) -> tuple:
            return model(x)[:2]

        self._forward = ms.jit(forward) if getattr(model, "graph_safe", False) else forward

    def loss_cell(self) -> nn.Cell:
        return DetrLossSums(self._bound())

    def _bound(self) -> DetrLossWeights:
        if self.weights is None:
            raise RuntimeError("Detection.bind(model, data) must run before training (the trainer calls it)")
        return self.weights

    # ------------------------------------------------------------------ step
    def collate(self, x: np.ndarray, y: np.ndarray) -> Batch:
        targets = unpack_targets(y)
        if self.flip:
            seed, step, ids = current_noise_key()
            if ids is None or len(ids) != len(x):
                ids = np.arange(len(x))
            draw = [np.random.default_rng([seed, step, int(i), _FLIP_STREAM]).random() for i in ids]
            x, targets = hflip(x, targets, np.asarray(draw) < 0.5)
        return Batch((Tensor(np.ascontiguousarray(x, np.float32)),), (), host=targets)

    matched_outputs = 2  # the model outputs the targets are built from (logits, boxes): train.matched

    def match(self, model: nn.Cell, batch: Batch) -> Batch:
        model.set_train(True)
        logits, boxes = self._forward(batch.inputs[0])
        return self.match_outputs((logits.asnumpy(), boxes.asnumpy()), batch)

    def match_outputs(self, outputs: tuple, batch: Batch) -> Batch:
        """The batch with its dense targets from the model's ``(logits, boxes)`` (numpy; Hungarian matching)."""
        w = self._bound()
        lg, bx = outputs
        idx = hungarian_match(lg, bx, batch.host, w)
        dense = pack_matches(idx, batch.host, lg.shape[1], w)[:4]  # onehot, ce_weight, box_target, box_mask
        return Batch(batch.inputs, tuple(Tensor(a) for a in dense), batch.host)

    def loss_scale(self, global_targets: np.ndarray) -> np.ndarray:
        counts = (global_targets["labels"] >= 0).sum(axis=1)
        return detr_norms(counts, self.num_queries, self._bound().eos_coefficient)

    # ------------------------------------------------------------------ evaluation
    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        from openmindspore.models.yolos.coco_eval import dense_coco_metrics

        return dense_coco_metrics(outputs[..., :-4], outputs[..., -4:], y)

    def predictions(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every query: ``scores``, ``labels`` (best class, "no object" excluded), ``boxes`` (normalised xyxy)."""
        from openmindspore.models.yolos.processor import YolosImageProcessor

        res = YolosImageProcessor.post_process_object_detection(outputs[..., :-4], outputs[..., -4:], -1.0)
        return {k: np.stack([r[k] for r in res]) for k in ("scores", "labels", "boxes")}
