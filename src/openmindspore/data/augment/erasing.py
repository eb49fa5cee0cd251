"""Erasing baselines: ``random_shift``, cutout (MindSpore's ``vision.CutOut``) and random erasing
(MindSpore's ``vision.RandomErasing``), each keyed per sample.

The boxes follow MindSpore's rules exactly (tested against MindSpore): :func:`cutout_box` is ``CutOut``'s
unbounded draw (the top-left corner uniform in ``[-size, H] x [-size, W]``, the box clipped to the image),
:func:`erasing_box` is ``RandomErasing``'s (area fraction and aspect ratio uniform, a box that fits, up to
``max_attempts`` tries). Only the source of the random numbers differs: ours is the sample's key.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from openmindspore.data.augment._common import TAGS, sample_rngs, shift_images

__all__ = ["random_shift", "shift_offsets", "cutout", "cutout_box", "erasing_box", "random_erasing"]

Box = tuple[int, int, int, int]  # (top, left, height, width), inside the image


def shift_offsets(ids: np.ndarray, seed: int, epoch: int, max_shift: int, pos: int = 0) -> np.ndarray:
    """``[N, 2]`` int (dy, dx) of each sample's shift: ``rng.integers(-max, max + 1, size=2)`` of its key
    (drawn as two scalar draws: the same numbers, NumPy's bounded draws take one 32-bit word each)."""
    lo, hi = -max_shift, max_shift + 1
    rngs = sample_rngs(seed, epoch, ids, TAGS["shift"], pos)
    return np.array([(rng.integers(lo, hi), rng.integers(lo, hi)) for rng in rngs], dtype=np.int64).reshape(len(ids), 2)


def random_shift(x: np.ndarray, ids: np.ndarray, seed: int, epoch: int, max_shift: int, pos: int = 0) -> np.ndarray:
    """Translate each image ``[C, H, W]`` by up to ``max_shift`` pixels in each axis (zero is the background
    after standardisation only approximately, so the fill value is the image's minimum). Returns a new
    array; ``x`` is unchanged."""
    if max_shift <= 0:
        return x
    return shift_images(x, shift_offsets(ids, seed, epoch, max_shift, pos), x.min(axis=tuple(range(1, x.ndim))))


def cutout_box(rng: np.random.Generator, h: int, w: int, size: int) -> Box:
    """One ``CutOut`` patch: top-left uniform in ``[-size, h] x [-size, w]``, clipped to the image (it may
    be partly or wholly outside, as in MindSpore)."""
    top = int(rng.integers(0, h + size + 1)) - size
    left = int(rng.integers(0, w + size + 1)) - size
    y0, x0 = max(top, 0), max(left, 0)
    return y0, x0, max(min(top + size, h) - y0, 0), max(min(left + size, w) - x0, 0)


def cutout(
    x: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    size: int,
    fill: float,
    patches: int = 1,
    pos: int = 0,
    tag: int = TAGS["cutout"],
) -> np.ndarray:
    """Erase ``patches`` square patches of side ``size`` per image to ``fill`` (MindSpore's ``CutOut`` fills
    0 on uint8 images: pass the data's black level). Returns a new array."""
    out = x.copy()
    h, w = x.shape[-2:]
    for i, rng in enumerate(sample_rngs(seed, epoch, ids, tag, pos)):
        for _ in range(patches):
            y0, x0, bh, bw = cutout_box(rng, h, w, size)
            out[i, :, y0 : y0 + bh, x0 : x0 + bw] = fill
    return out


def _uniform(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def _randint(rng: np.random.Generator, a: int, b: int) -> int:
    return int(rng.integers(a, b + 1))


def erasing_box(
    uniform: Callable[[float, float], float],
    randint: Callable[[int, int], int],
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    max_attempts: int,
) -> Box | None:
    """``RandomErasing``'s box from the draws ``uniform(a, b)`` and ``randint(a, b)`` (both ends included),
    or None when no box fits within ``max_attempts`` (the image stays as it is)."""
    area = h * w
    for _ in range(max_attempts):
        erase_area = uniform(scale[0], scale[1]) * area
        aspect = uniform(ratio[0], ratio[1])
        ew = int(round(math.sqrt(erase_area * aspect)))
        eh = int(round(ew / aspect))
        if eh < h and ew < w:
            return randint(0, h - eh), randint(0, w - ew), eh, ew
    return None


def random_erasing(
    x: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    prob: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    value: float = 0.0,
    max_attempts: int = 10,
    pos: int = 0,
) -> np.ndarray:
    """With probability ``prob`` per image, erase one box (area fraction in ``scale``, aspect in ``ratio``)
    to ``value`` (0 is the mean of standardised data, as for MindSpore's ``RandomErasing`` on normalised
    tensors). Returns a new array."""
    out = x.copy()
    h, w = x.shape[-2:]
    for i, rng in enumerate(sample_rngs(seed, epoch, ids, TAGS["random_erasing"], pos)):
        if not rng.random() < prob:
            continue
        box = erasing_box(
            functools.partial(_uniform, rng),
            functools.partial(_randint, rng),
            h,
            w,
            scale,
            ratio,
            max_attempts,
        )
        if box is not None:
            top, left, bh, bw = box
            out[i, :, top : top + bh, left : left + bw] = value
    return out
