"""CSV tables (``format: csv``): reading the file, choosing label and feature columns, fitting the
tabular :class:`~openmindspore.data.preprocess.Preprocessor` on the training rows.

Only the standard library's ``csv`` module and numpy: a header row, then one sample per row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.data.preprocess import Preprocessor, fit_columns, label_classes
from openmindspore.errors import ConfigError
from openmindspore.validation import did_you_mean

__all__ = ["read_csv", "csv_parts", "fit_tabular", "csv_labelled"]


def read_csv(path: str | Path, delimiter: str = ",", field: str = "dataset.path") -> tuple[list[str], np.ndarray]:
    """``(header, cells)``: the column names and an object array ``[rows, columns]`` of stripped strings."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, str(path), "an existing CSV file", "check the path (relative to the config file)")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            lines = [row for row in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(field, str(path), "a readable UTF-8 CSV file", str(e)) from None
    if len(lines) < 2:
        raise ConfigError(field, str(path), "a CSV file with a header row and at least one data row")
    header = [h.strip() for h in lines[0]]
    for i, row in enumerate(lines[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(
                f"{p.name} line {i}", len(row), f"{len(header)} cells like the header", "fix that row of the file"
            )
    cells = np.empty((len(lines) - 1, len(header)), dtype=object)
    cells[:] = [[c.strip() for c in row] for row in lines[1:]]
    return header, cells


def _column(header: list[str], name: str, field: str, path: str) -> int:
    if name not in header:
        hint = did_you_mean(name, header)
        raise ConfigError(field, name, f"a column of {Path(path).name} ({', '.join(header)})", hint)
    return header.index(name)


def _check_labels(labels: np.ndarray, path: str) -> None:
    empty = [i for i, v in enumerate(labels) if v == ""]
    if empty:
        raise ConfigError(f"{Path(path).name} line {empty[0] + 2}", "", "a label in every row", "fill or drop the row")


def csv_parts(spec: dict[str, Any]) -> tuple[Preprocessor, dict[str, tuple[np.ndarray, np.ndarray] | None]]:
    """The preprocessor (labels and columns chosen, statistics not yet fitted) and the raw splits
    ``{"train", "val", "test"}``: ``(cells [N, F] object, labels [N] str)``, ``None`` for a split the
    files do not have."""
    header, cells = read_csv(spec["path"], spec["delimiter"])
    label = spec["label"]
    li = _column(header, label, "dataset.label", spec["path"])
    feats = spec["features"] or [h for h in header if h != label]
    if label in feats:
        raise ConfigError("dataset.features", feats, "feature columns without the label column", f"remove {label!r}")
    if not feats:
        raise ConfigError("dataset.features", feats, "at least one feature column", "list them in features:")
    fi = [_column(header, f, "dataset.features", spec["path"]) for f in feats]
    labels = cells[:, li]
    _check_labels(labels, spec["path"])
    task = spec["task"]
    classes = None
    if task == "classification":
        classes = label_classes([str(v) for v in labels])
        if len(classes) < 2:
            raise ConfigError(
                "dataset.label",
                label,
                f"a label column with at least 2 classes (column {label!r} has only {classes[0]!r})",
                "choose another label column, or task: regression for a numeric target",
            )
    pre = Preprocessor(
        kind="tabular",
        task=task,
        input_shape=[0],
        class_names=classes,
        label=label,
        columns=[{"name": f, "type": "unfitted"} for f in feats],
        source_format="csv",
    )
    parts: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
        "train": (cells[:, fi], labels),
        "val": None,
        "test": None,
    }
    for split in ("val", "test"):
        if spec.get(f"{split}_path"):
            parts[split] = _labelled_cells(
                spec[f"{split}_path"], spec["delimiter"], feats, label, f"dataset.{split}_path"
            )
    return pre, parts


def _labelled_cells(
    path: str, delimiter: str, feats: list[str], label: str, field: str
) -> tuple[np.ndarray, np.ndarray]:
    header, cells = read_csv(path, delimiter, field)
    li = _column(header, label, field, path)
    fi = [_column(header, f, field, path) for f in feats]
    _check_labels(cells[:, li], path)
    return cells[:, fi], cells[:, li]


def fit_tabular(pre: Preprocessor, train_cells: np.ndarray) -> None:
    """Fit the column statistics on the training rows only."""
    pre.columns = fit_columns(pre.feature_names, train_cells)
    pre.input_shape = [sum(1 if c["type"] == "numeric" else len(c["categories"]) for c in pre.columns)]


def csv_labelled(pre: Preprocessor, path: str, delimiter: str = ",") -> tuple[np.ndarray, np.ndarray]:
    """A new labelled CSV (same columns as training) through a fitted preprocessor: ``(x, y)``."""
    cells, labels = _labelled_cells(path, delimiter, pre.feature_names, str(pre.label), "--data")
    return pre.transform_rows(cells), pre.encode_labels(list(labels), where=f"column {pre.label}")
