"""``Preprocessor``: the statistics that turn a user's raw samples into model inputs, saved with a run.

Fitted on the training split only (never on val/test), saved as ``RUN/preprocess.json`` (by
``train.checkpoint.RunDir``) and applied unchanged by ``oms eval --data``, ``oms serve`` and prediction,
so a trained model takes *raw* inputs:

* ``tabular`` (CSV): per feature column either ``numeric`` (mean, std, the fill value for empty cells =
  the training mean) or ``category`` (one-hot over the categories seen in training; an unseen one is all
  zeros). Output ``float32 [N, D]``.
* ``image``: decode (Pillow), convert to ``channels``, resize to ``image_size`` (bilinear), scale to
  [0, 1], standardise per channel. Output ``float32 [N, C, H, W]``.
* ``array`` (npz / numeric MindRecord): standardise per feature (``standardize: false``: identity).

``class_names`` maps class indices back to the labels of the files (``encode_labels``/``decode_labels``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["Preprocessor", "fit_columns", "label_classes"]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and math.isnan(v))


def label_classes(values: Sequence[str]) -> list[str]:
    """Sorted distinct labels: numerically when every label is a number (``2`` before ``10``)."""
    distinct = sorted(set(values))
    if all(_is_number(v) for v in distinct):
        distinct.sort(key=float)
    return distinct


def fit_columns(names: Sequence[str], rows: Sequence[Sequence[str]] | np.ndarray) -> list[dict[str, Any]]:
    """Column statistics of raw training cells (``rows[i][j]`` is column ``names[j]``)."""
    cols: list[dict[str, Any]] = []
    for j, name in enumerate(names):
        cells = [r[j] for r in rows]
        present = [c for c in cells if not _missing(c)]
        if present and all(_is_number(c) for c in present):
            v = np.asarray([float(c) for c in present], np.float64)
            mean, std = float(v.mean()), float(v.std())
            cols.append({"name": name, "type": "numeric", "mean": mean, "std": std if std > 0 else 1.0, "fill": mean})
        else:
            cols.append({"name": name, "type": "category", "categories": sorted(set(present))})
    return cols


@dataclass
class Preprocessor:
    """See the module docstring. ``input_shape`` is the shape of one model input sample."""

    kind: str  # "tabular" | "image" | "array"
    task: str
    input_shape: list[int]
    class_names: list[str] | None = None
    label: str | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    image_size: list[int] | None = None
    channels: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    source_format: str = ""

    # ------------------------------------------------------------ labels
    @property
    def num_classes(self) -> int:
        return len(self.class_names or [])

    def encode_labels(self, values: Sequence[Any], where: str = "label") -> np.ndarray:
        """Raw labels -> ``int64`` class indices (classification) or ``float32`` targets (regression)."""
        if self.task != "classification":
            try:
                return np.asarray([float(v) for v in values], np.float32)
            except (TypeError, ValueError):
                bad = next(v for v in values if not _is_number(str(v)))
                raise ConfigError(where, bad, "a number in every row for task regression") from None
        index = {name: i for i, name in enumerate(self.class_names or [])}
        out = np.empty(len(values), np.int64)
        for i, v in enumerate(values):
            key = _label_text(v)
            if key not in index:
                raise ConfigError(where, key, f"one of the training classes {self.class_names}", "check the labels")
            out[i] = index[key]
        return out

    def decode_labels(self, idx: np.ndarray) -> list[str]:
        names = self.class_names or []
        return [names[int(i)] for i in np.asarray(idx).reshape(-1)]

    # ------------------------------------------------------------ tabular
    @property
    def feature_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def transform_rows(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]] | np.ndarray) -> np.ndarray:
        """Raw rows (mappings by column name, or sequences in :attr:`feature_names` order) -> ``float32 [N, D]``."""
        if self.kind != "tabular":
            raise ConfigError("inputs", "rows", f"{self.kind} inputs (this model was not trained on a table)")
        blocks = []
        for j, col in enumerate(self.columns):
            cells = [_cell(r, j, col["name"]) for r in rows]
            if col["type"] == "numeric":
                v = np.asarray([col["fill"] if _missing(c) else _float(c, col["name"]) for c in cells], np.float64)
                blocks.append(((v - col["mean"]) / col["std"])[:, None])
            else:
                cats = {c: k for k, c in enumerate(col["categories"])}
                onehot = np.zeros((len(cells), len(cats)), np.float64)
                for i, c in enumerate(cells):
                    k = cats.get(str(c).strip())
                    if k is not None:
                        onehot[i, k] = 1.0
                blocks.append(onehot)
        return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)

    # ------------------------------------------------------------ images
    def read_image(self, source: str | Path | bytes | Any) -> np.ndarray:
        """One image (path, encoded bytes or PIL image) -> ``uint8 [C, H, W]`` at this preprocessor's size."""
        from PIL import Image

        im: Any
        try:
            if isinstance(source, (bytes, bytearray, np.bytes_)):
                im = Image.open(io.BytesIO(bytes(source)))
            elif isinstance(source, (str, Path)):
                im = Image.open(source)
            else:
                im = source
            im = im.convert("L" if self.channels == 1 else "RGB")
        except OSError as e:
            raise ConfigError("image", str(source)[:80], "a readable image (PNG, JPEG, ...)", str(e)) from None
        if self.image_size is not None and (im.height, im.width) != tuple(self.image_size):
            im = im.resize((self.image_size[1], self.image_size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
        return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))

    def transform_images(self, images: np.ndarray | Sequence[Any]) -> np.ndarray:
        """``uint8 [N, C, H, W]`` (or a list of image sources) -> standardised ``float32 [N, C, H, W]``."""
        if not isinstance(images, np.ndarray):
            images = np.stack([self.read_image(s) for s in images]) if len(images) else np.zeros((0, *self.input_shape))
        x = images.astype(np.float32) / 255.0
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            x = (x - np.asarray(self.mean, np.float32).reshape(shape)) / np.asarray(self.std, np.float32).reshape(shape)
        return np.ascontiguousarray(x, dtype=np.float32)

    # ------------------------------------------------------------ arrays
    def transform_array(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.mean is None or self.std is None:
            return np.ascontiguousarray(x)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)  # broadcast per sample
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    def transform(self, raw: Any) -> np.ndarray:
        """Raw inputs of this preprocessor's kind -> model inputs."""
        if self.kind == "tabular":
            return self.transform_rows(raw)
        if self.kind == "image":
            return self.transform_images(raw)
        return self.transform_array(raw)

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        return cls(**dict(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError("preprocessing", str(path), "a preprocess.json written by `oms train`", str(e)) from None


def _label_text(v: Any) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _cell(row: Mapping[str, Any] | Sequence[Any], j: int, name: str) -> Any:
    if isinstance(row, Mapping):
        if name not in row:
            raise ConfigError("row", sorted(row)[:8], f"a value for column {name!r}", "send every feature column")
        return row[name]
    return row[j]


def _float(v: Any, name: str) -> float:
    try:
        return float(v.decode() if isinstance(v, (bytes, np.bytes_)) else v)
    except (TypeError, ValueError):
        raise ConfigError(f"column {name}", v, "a number (this column was numeric in training)") from None
