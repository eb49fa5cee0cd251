"""The reader of detection datasets (``coco``, ``synthetic_detection``; specs in :mod:`openmindspore.data.detection`).

Images become model inputs through :class:`~openmindspore.models.yolos.processor.YolosImageProcessor`, as
``oms detect`` and serving run it: resized keeping the aspect ratio (``shortest_edge``/``longest_edge``,
default: the first training image's sides, i.e. no resizing for same-size images), rescaled, ImageNet
normalised. The images of every split are padded bottom/right to one frame (the largest processed size),
so ``x`` of every split is one ``float32 [N, 3, H, W]`` array; the boxes are normalised to that frame.
Targets are the structured rows of :func:`openmindspore.data.detection.target_dtype`. Owns no state:
``load_detection(spec) -> Dataset`` is registered as the reader of both formats when ``openmindspore.models``
is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.data import Dataset, Preprocessor, dataset_label
from openmindspore.data.detection import DETECTION_FORMATS, pack_targets
from openmindspore.data.spec import register_format, spec_model
from openmindspore.data.splits import split_indices
from openmindspore.errors import ConfigError

__all__ = ["load_detection", "coco_targets"]

Split = tuple[list[np.ndarray], dict[str, Any]]  # images [H, W, 3] uint8 and their COCO dict


def coco_targets(coco: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``{"image_id", "annotations": [...]}`` per image of a COCO dict (the processor's annotation form)."""
    by_img: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    return [{"image_id": im["id"], "annotations": by_img[im["id"]]} for im in coco["images"]]


def _check_boxes(coco: dict[str, Any], field: str, path: str) -> None:
    """Every annotation has a 4-number ``bbox`` and a ``category_id``, and there is at least one box."""
    for a in coco["annotations"]:
        bbox = a.get("bbox") if isinstance(a, dict) else None
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and "category_id" in a):
            raise ConfigError(
                field,
                path,
                "COCO detection annotations, each with bbox [x, y, width, height] and category_id",
                f"annotation {a.get('id') if isinstance(a, dict) else a!r} has bbox={bbox!r}; "
                "a classification or segmentation-only file cannot train a detector",
            )
    if not any(a.get("iscrowd", 0) == 0 for a in coco["annotations"]):
        raise ConfigError(
            field,
            path,
            "a detection dataset with boxes (its 'annotations' list holds none that is not a crowd region)",
            "annotate objects with bbox [x, y, width, height] and category_id, or choose another file",
        )


def _read_coco(path: str, image_dir: str | None, field: str) -> Split:
    from openmindspore.models.yolos.coco_eval import load_coco
    from openmindspore.models.yolos.processor import load_image

    if not Path(path).is_file():
        raise ConfigError(
            field, path, "an existing COCO annotation JSON file", "check the path (relative to the config)"
        )
    coco = load_coco(path)
    _check_boxes(coco, field, path)
    root = Path(image_dir) if image_dir else Path(path).parent
    return [load_image(root / im["file_name"]) for im in coco["images"]], coco


def _subset(split: Split, idx: np.ndarray) -> Split:
    images, coco = split
    keep = {coco["images"][i]["id"] for i in idx}
    sub = dict(coco, images=[coco["images"][i] for i in idx])
    sub["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    return [images[i] for i in idx], sub


def _coco_splits(spec: dict[str, Any]) -> dict[str, Split]:
    train = _read_coco(spec["path"], spec.get("image_dir"), "dataset.path")
    given = {s: _read_coco(spec[f"{s}_path"], spec.get(f"{s}_image_dir"), f"dataset.{s}_path")
             for s in ("val", "test") if spec.get(f"{s}_path")}  # fmt: skip
    fractions = (
        0.0 if "val" in given else spec["val_fraction"],
        0.0 if "test" in given else spec["test_fraction"],
    )
    tr, va, te = split_indices(np.arange(len(train[0])), fractions, spec["split_seed"], stratify=False)
    if len(tr) == 0:
        raise ConfigError("dataset.path", spec["path"], "enough images to train on after the val/test split")
    out = {"train": _subset(train, np.sort(tr))}
    for s, idx in (("val", va), ("test", te)):
        out[s] = given[s] if s in given else _subset(train, np.sort(idx))
    return out


def _synthetic_splits(spec: dict[str, Any]) -> dict[str, Split]:
    from openmindspore.models.yolos.synthetic import make_synthetic_detection

    kw = dict(
        image_size=spec["image_size"],
        max_objects=spec["max_objects"],
        min_size=spec.get("min_size"),
        max_size=spec.get("max_size"),
    )
    n_tr, n_va = spec["train_images"], spec["val_images"]
    n_te = spec.get("test_images") or n_va
    return {
        "train": make_synthetic_detection(n_tr, seed=spec["seed"], **kw),
        "val": make_synthetic_detection(n_va, seed=spec["seed"] + 10_000, first_image_id=n_tr + 1, **kw),
        "test": make_synthetic_detection(n_te, seed=spec["seed"] + 20_000, first_image_id=n_tr + n_va + 1, **kw),
    }


def _class_names(coco: dict[str, Any]) -> list[str]:
    """Names by category id ``0 .. max id`` (DETR's ``num_labels`` = largest id + 1; "N/A" for unused ids)."""
    cats = {int(c["id"]): str(c.get("name", c["id"])) for c in coco["categories"]}
    used = {int(a["category_id"]) for a in coco["annotations"]}
    top = max([*cats, *used])
    if min([*cats, *used]) < 0:
        raise ConfigError("dataset categories", sorted(cats), "category ids >= 0")
    return [cats.get(i, "N/A") for i in range(top + 1)]


def load_detection(spec: dict[str, Any]) -> Dataset:
    """A detection spec (validated by ``parse_dataset``) as a three-way split :class:`Dataset` (task ``detection``)."""
    from openmindspore.models.yolos.processor import IMAGENET_MEAN, IMAGENET_STD, YolosImageProcessor

    splits = _coco_splits(spec) if spec["format"] == "coco" else _synthetic_splits(spec)
    images0 = splits["train"][0]
    short = spec.get("shortest_edge") or min(images0[0].shape[:2])
    long_ = spec.get("longest_edge") or max(short, max(images0[0].shape[:2]))
    proc = YolosImageProcessor(shortest_edge=int(short), longest_edge=int(long_))
    names = ("train", "val", "test")
    images = [im for s in names for im in splits[s][0]]
    enc = proc(images, [t for s in names for t in coco_targets(splits[s][1])])
    x = np.asarray(enc["pixel_values"], np.float32)  # padded to one frame [N, 3, H, W]
    frame_hw = np.asarray(x.shape[2:], np.float64)
    targets, frames = [], []
    for im, lab in zip(images, enc["labels"]):
        h0, w0 = im.shape[:2]
        h1, w1 = proc.output_size((h0, w0))
        frames.append(frame_hw * (h0 / h1, w0 / w1))  # the padded frame in the original image's pixels
        targets.append({**lab, "area": lab["area"] * ((h0 * w0) / (h1 * w1))})
    slots = max(1, max(len(t["class_labels"]) for t in targets))
    y = pack_targets(targets, np.asarray(frames), slots)
    class_names = _class_names(splits["train"][1])
    if int(y["labels"].max()) >= len(class_names):
        raise ConfigError(
            "dataset categories",
            int(y["labels"].max()),
            f"category ids listed in the training file's categories (0..{len(class_names) - 1})",
            "add the category to the training annotations",
        )
    bounds = np.cumsum([0, *(len(splits[s][0]) for s in names)])
    part = {s: slice(int(bounds[i]), int(bounds[i + 1])) for i, s in enumerate(names)}
    pre = Preprocessor(
        kind="image",
        task="detection",
        input_shape=[int(v) for v in x.shape[1:]],
        class_names=class_names,
        image_size=[int(v) for v in x.shape[2:]],
        channels=3,
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        source_format=spec["format"],
    )
    return Dataset(
        name=dataset_label(spec),
        task="detection",
        x_train=np.ascontiguousarray(x[part["train"]]),
        y_train=y[part["train"]],
        x_val=np.ascontiguousarray(x[part["val"]]),
        y_val=y[part["val"]],
        x_test=np.ascontiguousarray(x[part["test"]]),
        y_test=y[part["test"]],
        num_classes=len(class_names),
        meta={
            "format": spec["format"],
            "hflip": bool(spec.get("hflip", False)),
            "processor": {"shortest_edge": int(short), "longest_edge": int(long_)},
        },
        preprocessor=pre,
    )


for _fmt in DETECTION_FORMATS:
    register_format(_fmt, spec_model(_fmt), load_detection)
