"""The user's own files as a :class:`~openmindspore.data.datasets.Dataset`: ``npz``, ``csv``,
``imagefolder`` and ``mindrecord`` (the format-specific reading lives in ``tabular``/``images``; npz and
MindRecord are here).

Every format goes the same way: read the raw training samples (and a val/test file when given), split
off the missing splits deterministically (stratified for classification, ``split_seed``), fit the
:class:`~openmindspore.data.preprocess.Preprocessor` on the training split only, transform every split.
The fitted preprocessor travels with the dataset (``Dataset.preprocessor``) and is saved with a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.data.datasets import Dataset
from openmindspore.data.images import decode_images, fit_images, folder_parts, image_preprocessor, list_imagefolder
from openmindspore.data.preprocess import Preprocessor, label_classes
from openmindspore.data.spec import dataset_label, format_loader
from openmindspore.data.splits import split_indices
from openmindspore.data.tabular import csv_labelled, csv_parts, fit_tabular
from openmindspore.errors import ConfigError

__all__ = ["load_files", "read_labelled"]

Parts = dict[str, tuple[np.ndarray, np.ndarray] | None]


def _label_task(y: np.ndarray, task: str | None) -> str:
    if task is not None:
        return task
    return "regression" if y.dtype.kind == "f" else "classification"


def _classes(y: np.ndarray, where: str) -> list[str]:
    from openmindspore.data.preprocess import _label_text

    classes = label_classes([_label_text(v) for v in y])
    if len(classes) < 2:
        raise ConfigError(
            where,
            classes[0] if classes else None,
            f"targets with at least 2 classes (only {classes[0]!r} occurs)" if classes else "some targets",
            "check the labels, or task: regression for a numeric target",
        )
    return classes


# ----------------------------------------------------------------------------- npz
def _npz_arrays(path: str, field: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, path, "an existing .npz file (numpy.savez)", "check the path (relative to the config)")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ConfigError(field, path, "a readable .npz file", str(e)) from None


def _npz_parts(spec: dict[str, Any]) -> tuple[Preprocessor, Parts]:
    arrays = _npz_arrays(spec["path"], "dataset.path")
    for key in (spec["x"], spec["y"]):
        if key not in arrays:
            which = "x" if key == spec["x"] else "y"
            raise ConfigError(f"dataset.{which}", key, f"an array of {Path(spec['path']).name} ({sorted(arrays)})")
    x, y = arrays[spec["x"]], arrays[spec["y"]]
    if len(x) != len(y) or x.ndim < 2:
        raise ConfigError(
            f"dataset.{spec['x']}", list(x.shape), f"[samples, ...] features matching the {len(y)} targets of y"
        )
    task = _label_task(y, spec.get("task"))
    classes = _classes(y, "dataset.y") if task == "classification" else None
    pre = Preprocessor(kind="array", task=task, input_shape=list(x.shape[1:]), class_names=classes, source_format="npz")
    parts: Parts = {"train": (x, y), "val": None, "test": None}
    for split in ("val", "test"):
        xs, ys = f"{spec['x']}_{split}", f"{spec['y']}_{split}"
        if xs in arrays and ys in arrays:
            parts[split] = (arrays[xs], arrays[ys])
    return pre, parts


def _fit_array(pre: Preprocessor, train: np.ndarray, standardize: bool) -> None:
    if not standardize:
        return
    x = train.astype(np.float64)
    axes = (0, *range(2, x.ndim)) if x.ndim == 4 else (0,)  # images: per channel; else per feature
    mean, std = x.mean(axis=axes, keepdims=True)[0], x.std(axis=axes, keepdims=True)[0]
    std[std == 0] = 1.0
    pre.mean, pre.std = mean.tolist(), std.tolist()


# ----------------------------------------------------------------------------- mindrecord
def _mindrecord_columns(path: str, xcol: str, ycol: str, field: str) -> tuple[list[Any], np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, path, "an existing MindRecord file", "check the path (relative to the config)")
    import mindspore.dataset as msd

    try:
        names = msd.MindDataset(str(p), shuffle=False).get_col_names()
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            field, path, "a MindRecord file with its .db index beside it", str(e).splitlines()[0]
        ) from None
    for which, col in (("x", xcol), ("y", ycol)):
        if col not in names:
            raise ConfigError(f"dataset.{which}", col, f"a column of {p.name} ({', '.join(sorted(names))})")
    ds = msd.MindDataset(str(p), columns_list=[xcol, ycol], shuffle=False)
    xs, ys = [], []
    for row in ds.create_dict_iterator(output_numpy=True, num_epochs=1):
        xs.append(row[xcol])
        ys.append(row[ycol])
    y = np.asarray([v.item() if getattr(v, "ndim", 1) == 0 else v for v in ys])
    return xs, y


def _is_encoded(v: Any) -> bool:
    return isinstance(v, (bytes, np.bytes_)) or (isinstance(v, np.ndarray) and v.dtype.kind in "SUO")


def _mindrecord_parts(spec: dict[str, Any]) -> tuple[Preprocessor, Parts]:
    xs, y = _mindrecord_columns(spec["path"], spec["x"], spec["y"], "dataset.path")
    task = _label_task(y, spec.get("task"))
    classes = _classes(y, "dataset.y") if task == "classification" else None
    others = {
        s: _mindrecord_columns(spec[f"{s}_path"], spec["x"], spec["y"], f"dataset.{s}_path")
        for s in ("val", "test")
        if spec.get(f"{s}_path")
    }
    parts: Parts = {"train": None, "val": None, "test": None}
    if xs and _is_encoded(xs[0]):
        raw = [bytes(v) if isinstance(v, np.ndarray) else v for v in xs]
        pre = image_preprocessor(raw, classes, spec, task)
        parts["train"] = (decode_images(pre, raw), y)
        for s, (ox, oy) in others.items():
            parts[s] = (decode_images(pre, [bytes(v) if isinstance(v, np.ndarray) else v for v in ox]), oy)
    else:
        pre = Preprocessor(
            kind="array", task=task, input_shape=list(np.shape(xs[0])), class_names=classes, source_format="mindrecord"
        )
        parts["train"] = (np.stack(xs), y)
        for s, (ox, oy) in others.items():
            parts[s] = (np.stack(ox), oy)
    return pre, parts


# ----------------------------------------------------------------------------- assembly
def _assemble(spec: dict[str, Any], pre: Preprocessor, parts: Parts) -> Dataset:
    """Split off the missing splits, fit ``pre`` on the training split only, transform every split."""
    train = parts["train"]
    assert train is not None
    x_all, y = train[0], pre.encode_labels(list(train[1]), where="dataset labels")
    given = {s for s in ("val", "test") if parts[s] is not None}
    fractions = (
        0.0 if "val" in given else spec["val_fraction"],
        0.0 if "test" in given else spec["test_fraction"],
    )
    tr, va, te = split_indices(y, fractions, spec["split_seed"], stratify=pre.task == "classification")
    if len(tr) == 0:
        raise ConfigError("dataset.path", spec["path"], "enough samples to train on after the val/test split")
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = {"train": (x_all[tr], y[tr])}
    for s, idx in (("val", va), ("test", te)):
        part = parts[s]
        if part is None:
            raw[s] = (x_all[idx], y[idx])
        else:
            raw[s] = (part[0], pre.encode_labels(list(part[1]), where=f"dataset.{s}_path labels"))
    if pre.kind == "tabular":
        fit_tabular(pre, raw["train"][0])
    elif pre.kind == "image":
        fit_images(pre, raw["train"][0])
    else:
        _fit_array(pre, raw["train"][0], bool(spec.get("standardize", True)))
    xs = {s: pre.transform(raw[s][0]) for s in raw}
    return Dataset(
        name=dataset_label(spec),
        task=pre.task,
        x_train=xs["train"],
        y_train=raw["train"][1],
        x_val=xs["val"],
        y_val=raw["val"][1],
        x_test=xs["test"],
        y_test=raw["test"][1],
        num_classes=pre.num_classes,
        meta={"format": spec["format"], "path": spec["path"]},
        preprocessor=pre,
    )


_PARTS = {"npz": _npz_parts, "csv": csv_parts, "imagefolder": folder_parts, "mindrecord": _mindrecord_parts}


def load_files(spec: dict[str, Any]) -> Dataset:
    """A validated file spec (:func:`openmindspore.data.spec.parse_dataset`) as a three-way split dataset."""
    loader = format_loader(spec["format"])
    if loader is not None:  # a format registered by another package (e.g. detection data)
        return loader(spec)
    if spec["format"] not in _PARTS:
        raise ConfigError(
            "dataset.format",
            spec["format"],
            "a format whose reader is loaded",
            "import openmindspore.models first (it reads the detection formats)",
        )
    pre, parts = _PARTS[spec["format"]](spec)
    return _assemble(spec, pre, parts)


def read_labelled(pre: Preprocessor, path: str | Path, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A new labelled file/folder of the run's format through its *fitted* preprocessor: ``(x, y)``."""
    path = str(path)
    fmt = pre.source_format or spec.get("format", "")
    if fmt not in _PARTS:
        raise ConfigError(
            "--data",
            path,
            f"new data of a csv, npz, imagefolder or mindrecord run (this run's format is {fmt})",
            "evaluate a detection run with `oms eval-detection --weights RUN --annotations FILE`",
        )
    if fmt == "csv":
        return csv_labelled(pre, path, spec.get("delimiter", ","))
    if fmt == "imagefolder":
        paths, labels = list_imagefolder(path, "--data")
        return pre.transform_images(decode_images(pre, paths)), pre.encode_labels(labels, where="--data classes")
    if fmt == "npz":
        arrays = _npz_arrays(path, "--data")
        for key in (spec["x"], spec["y"]):
            if key not in arrays:
                raise ConfigError("--data", path, f"a .npz with arrays {spec['x']!r} and {spec['y']!r}")
        return pre.transform_array(arrays[spec["x"]]), pre.encode_labels(list(arrays[spec["y"]]), where="--data y")
    xs, y = _mindrecord_columns(path, spec["x"], spec["y"], "--data")
    x = pre.transform_images([bytes(v) for v in xs]) if pre.kind == "image" else pre.transform_array(np.stack(xs))
    return x, pre.encode_labels(list(y), where="--data labels")
