"""TrivialAugmentWide (Müller & Hutter, 2021), keyed per sample, with MindSpore's operation space.

Each image gets one operation drawn uniformly from the 14 of MindSpore's ``vision.TrivialAugmentWide`` (the
names, magnitudes, signs and the order of its ``GetSpace``), a magnitude bin drawn uniformly, and a sign.
The pixel operations are MindSpore's own (``vision.Affine``, ``vision.Rotate``, ``vision.AdjustBrightness``,
...) called eagerly on uint8 ``[H, W, 3]``: the same code ``TrivialAugmentWide`` runs, so an image given the
same operation and magnitude comes out bitwise the same (tested). Images are mapped to uint8 through the
data's value range ``[lo, hi]`` (for standardised MNIST, exactly the raw pixels) and back; single-channel
images run as three equal channels (MindSpore's op takes only RGB) and keep the first.

One deliberate difference: MindSpore picks its operation, magnitude and sign with ``RandInt(0, n) % n``
(``uniform_int_distribution`` is inclusive), which makes operation 0 (AutoContrast), magnitude bin 0 and
the positive sign more likely than the paper's uniform choice; we draw uniformly, as the paper and
torchvision do.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from openmindspore.data.augment._common import TAGS, from_uint8, sample_rngs, shift_image, to_uint8

__all__ = ["ta_space", "TA_OPS", "ta_apply", "ta_draw", "trivial_augment"]

#: MindSpore's operation names in the order of its ``std::map`` (sorted).
TA_OPS = (
    "AutoContrast",
    "Brightness",
    "Color",
    "Contrast",
    "Equalize",
    "Identity",
    "Posterize",
    "Rotate",
    "Sharpness",
    "ShearX",
    "ShearY",
    "Solarize",
    "TranslateX",
    "TranslateY",
)


def _linspace(start: float, end: float, n: int, scale: float = 1.0, offset: float = 0.0, rnd: bool = False) -> list:
    """MindSpore's ``Linspace`` in float32 (``Round`` is half-to-even, as ``np.rint``)."""
    f = np.float32
    step = f(0) if n == 1 else f((f(end) - f(start)) / f(n - 1))
    out = []
    for i in range(n):
        v = f(f(f(start) + f(i) * step) * f(scale) + f(offset))
        out.append(float(np.rint(v)) if rnd else float(v))
    return out


@lru_cache(maxsize=8)
def ta_space(bins: int = 31) -> dict[str, tuple[tuple[float, ...], bool]]:
    """``{op: (magnitudes, signed)}`` exactly as MindSpore's ``TrivialAugmentWideOp::GetSpace(bins)``."""
    lin = _linspace
    return {
        "AutoContrast": ((0.0,), False),
        "Brightness": (tuple(lin(0.0, 0.99, bins)), True),
        "Color": (tuple(lin(0.0, 0.99, bins)), True),
        "Contrast": (tuple(lin(0.0, 0.99, bins)), True),
        "Equalize": ((0.0,), False),
        "Identity": ((0.0,), False),
        "Posterize": (
            tuple(lin(0.0, bins - 1.0, bins, float(np.float32(-6.0) / np.float32(bins - 1)), 8.0, True)),
            False,
        ),
        "Rotate": (tuple(lin(0.0, 135.0, bins)), True),
        "Sharpness": (tuple(lin(0.0, 0.99, bins)), True),
        "ShearX": (tuple(lin(0.0, 0.99, bins)), True),
        "ShearY": (tuple(lin(0.0, 0.99, bins)), True),
        "Solarize": (tuple(lin(255.0, 0.0, bins)), False),
        "TranslateX": (tuple(lin(0.0, 32.0, bins)), True),
        "TranslateY": (tuple(lin(0.0, 32.0, bins)), True),
    }


@lru_cache(maxsize=512)
def _op(name: str, magnitude: float) -> Any:
    """The MindSpore vision operation ``ApplyAugment`` runs for ``name`` at ``magnitude`` (built once)."""
    import mindspore.dataset.vision as v

    f = np.float32
    nearest = v.Inter.NEAREST
    if name in ("ShearX", "ShearY"):
        shear = float(f(float(f(magnitude) * f(180)) / math.pi))  # float_t shear = magnitude * 180 / CV_PI
        pair = [shear, 0.0] if name == "ShearX" else [0.0, shear]
        return v.Affine(degrees=0.0, translate=[0.0, 0.0], scale=1.0, shear=pair, resample=nearest, fill_value=0)
    factor = float(f(1.0) + f(magnitude))
    return {
        "Rotate": lambda: v.Rotate(magnitude, resample=nearest, expand=False, center=None, fill_value=0),
        "Brightness": lambda: v.AdjustBrightness(factor),
        "Color": lambda: v.AdjustSaturation(factor),
        "Contrast": lambda: v.AdjustContrast(factor),
        "Sharpness": lambda: v.AdjustSharpness(factor),
        "Posterize": lambda: v.Posterize(int(magnitude)),
        "Solarize": lambda: v.Solarize([magnitude, magnitude]),
        "AutoContrast": lambda: v.AutoContrast(cutoff=0.0, ignore=None),
        "Equalize": lambda: v.Equalize(),
    }[name]()


def ta_apply(rgb: np.ndarray, name: str, magnitude: float) -> np.ndarray:
    """Operation ``name`` at ``magnitude`` on a uint8 ``[H, W, 3]`` image (MindSpore's pixel code)."""
    if name == "Identity":
        return rgb.copy()
    if name in ("TranslateX", "TranslateY"):  # whole pixels (static_cast<int>: toward zero), fill 0
        t = int(magnitude)
        return shift_image(rgb.transpose(2, 0, 1), *((0, t) if name == "TranslateX" else (t, 0)), 0).transpose(1, 2, 0)
    return np.asarray(_op(name, float(magnitude))(rgb), dtype=np.uint8)


def ta_draw(rng: np.random.Generator, bins: int) -> tuple[str, float]:
    """One uniform draw of (operation, signed magnitude) from the space."""
    op_i, mag_i, neg = (int(v) for v in rng.integers(0, [len(TA_OPS), bins, 2]))
    name = TA_OPS[op_i]
    mags, signed = ta_space(bins)[name]
    mag = mags[mag_i] if len(mags) > 1 else mags[0]
    return name, (-mag if signed and neg and mag != 0.0 else mag)


def trivial_augment(
    x: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    lo: float,
    hi: float,
    bins: int = 31,
    pos: int = 0,
    tag: int = TAGS["trivial_augment"],
) -> np.ndarray:
    """TrivialAugmentWide on each image ``[C, H, W]`` (C = 1 or 3) of ``x``; returns a new float32 array."""
    out = np.empty_like(x)
    for i, rng in enumerate(sample_rngs(seed, epoch, ids, tag, pos)):
        name, mag = ta_draw(rng, bins)
        if name == "Identity":
            out[i] = x[i]
            continue
        u8 = to_uint8(x[i], lo, hi)
        rgb = np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8
        res = ta_apply(np.ascontiguousarray(rgb), name, mag)
        out[i] = from_uint8(res[:, :, :1] if u8.shape[2] == 1 else res, lo, hi)
    return out
