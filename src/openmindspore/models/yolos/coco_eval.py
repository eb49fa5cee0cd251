"""COCO-style detection metrics through ``pycocotools`` (the reference implementation of COCO mAP): of a
COCO annotation file and detections, or of a model's raw outputs against a detection dataset's dense
targets (:func:`dense_coco_metrics`, the ``detection`` task's metrics)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["evaluate_coco", "to_coco_detections", "load_coco", "dense_coco_metrics", "dense_to_coco", "STATS"]

STATS = [
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]


def load_coco(gt: str | Path | dict) -> dict:
    """A COCO annotation dict from a path or a dict; checks the required keys."""
    if isinstance(gt, dict):
        coco = gt
    else:
        p = Path(gt)
        try:
            coco = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError("annotations", str(p), "a readable COCO-format JSON file", str(e)) from None
        if not isinstance(coco, dict):
            raise ConfigError("annotations", str(p), "a COCO-format JSON object (images, annotations, categories)")
    for k in ("images", "annotations", "categories"):
        if k not in coco:
            raise ConfigError(
                "annotations",
                sorted(coco),
                f"a COCO dict with key {k!r}",
                "use the COCO detection format (images, annotations, categories)",
            )
    return coco


def to_coco_detections(results: Sequence[dict[str, np.ndarray]], image_ids: Sequence[int]) -> list[dict]:
    """Post-processed results (xyxy pixel boxes) -> COCO records ``{image_id, category_id, bbox xywh, score}``."""
    dets = []
    for r, img_id in zip(results, image_ids):
        for s, lab, b in zip(r["scores"], r["labels"], r["boxes"]):
            x0, y0, x1, y1 = (float(v) for v in b)
            dets.append(
                {
                    "image_id": int(img_id),
                    "category_id": int(lab),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(s),
                }
            )
    return dets


def evaluate_coco(gt: str | Path | dict, detections: Sequence[dict]) -> dict[str, float]:
    """COCO bbox metrics: ``map`` (IoU .50:.95), ``map50``, ``map75``, size breakdowns and recalls.

    ``detections`` are COCO result records; an empty list scores 0. Detections on unknown image ids are an
    error (they would be silently ignored otherwise).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = load_coco(gt)
    known = {im["id"] for im in gt["images"]}
    unknown = sorted({d["image_id"] for d in detections} - known)
    if unknown:
        raise ConfigError(
            "detections.image_id",
            unknown[:10],
            "ids present in the annotation file",
            "evaluate on the same images the detections came from",
        )
    if not detections:
        return {k: 0.0 for k in STATS}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        dt = coco.loadRes([dict(d) for d in detections])
        ev = COCOeval(coco, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools reports -1 where a category/size has no ground truth; report those as 0
    return {k: float(max(v, 0.0)) for k, v in zip(STATS, ev.stats)}


def dense_to_coco(y: np.ndarray) -> dict:
    """A COCO ground-truth dict (image ids ``1..N``, boxes in pixels of each image's frame) from the structured
    targets of a detection dataset (:func:`openmindspore.data.detection.target_dtype`)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for i, row in enumerate(y):
        fh, fw = (float(v) for v in row["frame"])
        images.append({"id": i + 1, "height": fh, "width": fw})
        for lab, (cx, cy, w, h), area in zip(row["labels"], row["boxes"], row["area"]):
            if lab < 0:
                continue
            bbox = [(cx - 0.5 * w) * fw, (cy - 0.5 * h) * fh, w * fw, h * fh]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(lab),
                    "bbox": [float(v) for v in bbox],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
    cats = sorted({int(a["category_id"]) for a in anns})
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}


def dense_coco_metrics(logits: np.ndarray, boxes: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """COCO metrics of raw outputs ``logits [N, Q, C+1]``, ``boxes [N, Q, 4]`` (cxcywh in [0, 1]) against the
    structured targets ``y [N]``: every query kept, scored by its best class probability (as ``oms
    eval-detection`` does), boxes and ground truth in the pixels of each image's frame."""
    from openmindspore.models.yolos.processor import YolosImageProcessor

    if len(y) == 0:
        return {k: float("nan") for k in STATS}
    res = YolosImageProcessor.post_process_object_detection(logits, boxes, 0.0, y["frame"])
    return evaluate_coco(dense_to_coco(y), to_coco_detections(res, list(range(1, len(y) + 1))))
