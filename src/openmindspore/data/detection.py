"""Object-detection datasets: their specs (``coco``, ``synthetic_detection``) and their dense targets.

Two formats (docs/data.md, "Detection"), validated like every dataset spec (:func:`parse_dataset`)::

    dataset: {format: coco, path: train.json, image_dir: images/, val_path: val.json}
    dataset: {format: synthetic_detection, train_images: 2048, image_size: [48, 64], max_objects: 1}

The targets of a detection dataset are one numpy *structured* row per image (:func:`target_dtype`), so they
index, shard and subset like any other target array:

* ``frame`` ``float32 [2]``: height and width of the model-input frame in the original image's pixels
  (a normalised box times it is a box in the original image: what COCO mAP is computed in);
* ``labels`` ``int64 [M]``: category ids, ``-1`` in an empty slot;
* ``boxes`` ``float32 [M, 4]``: normalised ``(cx, cy, w, h)`` relative to the frame;
* ``area`` ``float32 [M]``: the annotation's area in original pixels (COCO's small/medium/large ranges).

``M`` (the slots) is the most objects any image of the dataset has. The reader that turns images into
model inputs is registered by :mod:`openmindspore.models.yolos` (it uses the YOLOS image processor);
this module owns only the specs and the target layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from openmindspore.data.spec import _Files, _SplitPaths, register_format

__all__ = [
    "DETECTION_FORMATS",
    "CocoDetectionData",
    "SyntheticDetectionData",
    "target_dtype",
    "pack_targets",
    "unpack_targets",
    "count_boxes",
]

DETECTION_FORMATS = ("coco", "synthetic_detection")
_HFLIP = "random left-right flips of training images and their boxes, keyed by (seed, step, sample id)"


class CocoDetectionData(_Files, _SplitPaths):
    """COCO detection annotations (``path``: the JSON of the training images) and their image folders.
    ``val_path``/``test_path``: JSON files of those splits; else they are split off by image (``split_seed``)."""

    path_fields: ClassVar[tuple[str, ...]] = ("image_dir", "val_image_dir", "test_image_dir")

    format: Literal["coco"]
    image_dir: str | None = Field(None, description="folder of the training images (default: the JSON's folder)")
    val_image_dir: str | None = Field(None, description="folder of the val_path images (default: its folder)")
    test_image_dir: str | None = Field(None, description="folder of the test_path images (default: its folder)")
    shortest_edge: int | None = Field(None, ge=16, description="resize: short side (default: the first image's)")
    longest_edge: int | None = Field(None, ge=16, description="resize: cap on the long side (default: the first's)")
    hflip: bool = Field(False, description=_HFLIP)


class SyntheticDetectionData(BaseModel):
    """Generated offline: coloured squares, circles and triangles on cluttered backgrounds, exact boxes
    (:mod:`openmindspore.models.yolos.synthetic`). The validation images use ``seed + 10000``, the test
    images ``seed + 20000``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["synthetic_detection"]
    train_images: int = Field(256, gt=0)
    val_images: int = Field(64, gt=0)
    test_images: int | None = Field(None, gt=0, description="default: val_images")
    image_size: tuple[int, int] = Field((96, 128), description="[height, width] of every image")
    max_objects: int = Field(3, gt=0, description="at most this many shapes per image")
    min_size: int | None = Field(None, description="smallest shape side, pixels (default from image_size)")
    max_size: int | None = Field(None, description="largest shape side, pixels (default from image_size)")
    seed: int = Field(0, ge=0, description="seed of the generated images (not the training seed)")
    hflip: bool = Field(False, description=_HFLIP)


def target_dtype(slots: int) -> np.dtype:
    """The structured dtype of one image's targets with ``slots`` box slots (see the module docstring)."""
    return np.dtype(
        [
            ("frame", np.float32, (2,)),
            ("labels", np.int64, (slots,)),
            ("boxes", np.float32, (slots, 4)),
            ("area", np.float32, (slots,)),
        ]
    )


def pack_targets(targets: Sequence[dict[str, Any]], frames: np.ndarray, slots: int) -> np.ndarray:
    """Per-image dicts (``class_labels [n]``, ``boxes [n, 4]`` normalised cxcywh, ``area [n]``) and their
    ``frames [N, 2]`` -> the structured target array ``[N]`` with ``slots`` slots (``n <= slots``)."""
    y = np.zeros(len(targets), target_dtype(slots))
    y["labels"] = -1
    y["frame"] = np.asarray(frames, np.float32).reshape(len(targets), 2)
    for i, t in enumerate(targets):
        labels = np.asarray(t["class_labels"], np.int64).reshape(-1)
        n = len(labels)
        y["labels"][i, :n] = labels
        y["boxes"][i, :n] = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
        y["area"][i, :n] = np.asarray(t["area"], np.float32).reshape(-1)
    return y


def unpack_targets(y: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The structured targets as per-image dicts ``{class_labels [n], boxes [n, 4]}`` (empty slots dropped),
    the form the Hungarian matcher takes."""
    out = []
    for row in y:
        keep = row["labels"] >= 0
        out.append({"class_labels": row["labels"][keep], "boxes": row["boxes"][keep]})
    return out


def count_boxes(y: np.ndarray) -> int:
    """Objects in the structured targets ``y``."""
    return int((y["labels"] >= 0).sum())


register_format("coco", CocoDetectionData)
register_format("synthetic_detection", SyntheticDetectionData)
