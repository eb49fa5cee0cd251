"""The raw-input contract of a served run: which OIP input tensors it takes and how they become model inputs.

A run on the user's own files saved its fitted preprocessing (``RUN/preprocess.json``,
:class:`~openmindspore.data.preprocess.Preprocessor`); served, it takes the **raw** data of those files and
applies that preprocessing on the replica, exactly as training did (same code, same statistics):

=============  =========================  =======  ==============  ==========================================
run's data     input tensor(s)            type     per-sample      meaning
=============  =========================  =======  ==============  ==========================================
csv            one per feature column,    FP64     ``[1]``         a numeric column's value; NaN (JSON
               named as in the header                              ``null``) is a missing cell
               (the label column is not   BYTES    ``[1]``         a text (categorical) column's value,
               an input)                                           UTF-8; an unseen category is all zeros
imagefolder,   ``image``                  UINT8    ``[H, W, C]``   pixels at the saved size, row-major HWC
encoded                                                            (``C`` = 1 grey or 3 RGB)
MindRecord     ``image`` (``?input=       BYTES    ``[]``          one encoded image file (PNG, JPEG, ...):
               encoded``)                                          decoded, converted and resized as in
                                                                   training
npz, numeric   ``x``                      FP32     the saved       raw features, standardised on the replica
MindRecord                                         shape
=============  =========================  =======  ==============  ==========================================

Runs on a built-in dataset take the model's input itself (``x`` FP32, the dataset's per-sample shape). The
OIP layer checks names, datatypes and shapes before a request reaches a replica (a missing column, a
string in a numeric column or an image of the wrong size is a 400 naming the tensor); what only the data
can tell (an infinite number, text that is not UTF-8, an unreadable image file) raises ``InputError`` here:
a 400 for that request only.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np

from openmindspore.data.preprocess import Preprocessor
from openmindspore.errors import ConfigError
from openmindspore.serve.protocol import TensorSpec
from openmindspore.serve.registry import InputError

__all__ = ["InputMode", "RunInputs", "run_inputs"]

#: how image runs take images: ``pixels`` (UINT8 ``[H, W, C]``) or ``encoded`` (one image file, BYTES)
InputMode = Literal["pixels", "encoded"]


class RunInputs:
    """The model's own input: ``x`` FP32 of the run's per-sample shape (runs on a built-in dataset).

    Subclasses take raw data instead; every one gives ``specs`` (the OIP inputs), ``to_model`` (OIP input
    tensors, already checked against ``specs`` -> ``float32 [n, *input_shape]``) and ``example`` (one valid
    sample, for warm-up).
    """

    kind = "model"

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = tuple(input_shape)
        self.specs = [TensorSpec("x", "FP32", self.input_shape)]

    def to_model(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(inputs["x"], dtype=np.float32)

    def example(self) -> dict[str, np.ndarray]:
        return {s.name: np.zeros((1, *s.shape), dtype=np.float32) for s in self.specs}


class ArrayInputs(RunInputs):
    """npz / numeric MindRecord runs: raw ``x`` FP32, standardised with the saved per-feature statistics."""

    kind = "array"

    def __init__(self, pre: Preprocessor) -> None:
        super().__init__(tuple(pre.input_shape))
        self.pre = pre

    def to_model(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.pre.transform_array(inputs["x"])


class TabularInputs(RunInputs):
    """CSV runs: one ``[n, 1]`` tensor per feature column (FP64 numeric, BYTES text), in any order."""

    kind = "tabular"

    def __init__(self, pre: Preprocessor) -> None:
        self.input_shape = tuple(pre.input_shape)
        self.pre = pre
        self.specs = [TensorSpec(c["name"], "FP64" if c["type"] == "numeric" else "BYTES", (1,)) for c in pre.columns]

    def to_model(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        columns = [_column(col, inputs[col["name"]].reshape(n)) for col in self.pre.columns]
        return self.pre.transform_rows(list(zip(*columns, strict=True)))

    def example(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for col in self.pre.columns:
            if col["type"] == "numeric":
                out[col["name"]] = np.full((1, 1), np.nan)
            else:
                cell = np.empty((1, 1), dtype=object)
                cell[0, 0] = (col["categories"] or [""])[0].encode()
                out[col["name"]] = cell
        return out


def _column(col: dict, values: np.ndarray) -> list:
    """One column's cells as the preprocessor reads raw CSV cells: floats (NaN: missing) or text."""
    name = col["name"]
    if col["type"] == "numeric":
        v = np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(np.isinf(v))
        if len(bad):
            raise InputError(
                f"input {name!r} sample {bad[0]}: {v[bad[0]]} is not a finite number (send NaN, or null in JSON, "
                f"for a missing value: it is filled with the training mean {col['fill']:g})"
            )
        return [float(x) for x in v]
    cells = []
    for i, b in enumerate(values):
        try:
            cells.append(b.decode("utf-8") if isinstance(b, (bytes, np.bytes_)) else str(b))
        except UnicodeDecodeError as e:
            raise InputError(f"input {name!r} sample {i}: not UTF-8 text ({e})") from None
    return cells


class ImageInputs(RunInputs):
    """Image runs: ``image`` UINT8 ``[H, W, C]`` pixels at the saved size, or (``encoded``) one image file per
    sample (BYTES), decoded and resized on the replica as training decoded the image folder."""

    kind = "image"

    def __init__(self, pre: Preprocessor, mode: InputMode = "pixels") -> None:
        self.input_shape = tuple(pre.input_shape)
        self.pre, self.mode = pre, mode
        c, h, w = self.input_shape
        self.specs = [
            TensorSpec("image", "BYTES", ()) if mode == "encoded" else TensorSpec("image", "UINT8", (h, w, c))
        ]

    def to_model(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        image = inputs["image"]
        if self.mode == "pixels":
            return self.pre.transform_images(np.ascontiguousarray(np.asarray(image, np.uint8).transpose(0, 3, 1, 2)))
        from PIL import Image

        decoded = []
        for i, data in enumerate(image.reshape(-1)):
            try:
                decoded.append(self.pre.read_image(bytes(data)))
            except (ValueError, OSError, Image.DecompressionBombError) as e:  # ConfigError is a ValueError
                why = e.fix if isinstance(e, ConfigError) and e.fix else str(e)
                raise InputError(f"input 'image' sample {i}: not a readable image file ({why})") from None
        return self.pre.transform_images(np.stack(decoded))

    def example(self) -> dict[str, np.ndarray]:
        if self.mode == "pixels":
            return {"image": np.zeros((1, *self.specs[0].shape), np.uint8)}
        from PIL import Image

        c, h, w = self.input_shape
        buf = io.BytesIO()
        Image.new("L" if c == 1 else "RGB", (w, h)).save(buf, format="PNG")
        image = np.empty(1, dtype=object)
        image[0] = buf.getvalue()
        return {"image": image}


def run_inputs(input_shape: tuple[int, ...], pre: Preprocessor | None, mode: InputMode = "pixels") -> RunInputs:
    """The raw-input contract of a run whose model takes ``input_shape`` and whose saved preprocessing is
    ``pre`` (None: a built-in dataset's run). ``mode="encoded"`` is for image runs only (``ConfigError``)."""
    if mode == "encoded" and (pre is None or pre.kind != "image"):
        raise ConfigError(
            "input",
            mode,
            "input=pixels: only runs on images (imagefolder, encoded MindRecord) take encoded image files",
            "drop ?input=encoded",
        )
    if pre is None:
        return RunInputs(input_shape)
    if tuple(pre.input_shape) != tuple(input_shape) or math.prod(input_shape) == 0:
        raise ConfigError(
            "preprocessing",
            list(pre.input_shape),
            f"the model's per-sample input shape {list(input_shape)}",
            "preprocess.json does not belong to this run; train it again",
        )
    if pre.kind == "tabular":
        return TabularInputs(pre)
    if pre.kind == "image":
        return ImageInputs(pre, mode)
    return ArrayInputs(pre)
