"""What every augmentation op shares: the per-sample random key, the image-layout check, uint8 round trips.

Every random draw of an op comes from ``np.random.default_rng([seed, epoch, sample id, tag(, position)])``:
the op's tag separates ops, the op's position in the list separates two ops of one kind (position 0 keeps
the key ``random_shift`` has always used). Nothing depends on the batch a sample is in, on its position
in that batch or on the worker that computes it.
"""

from __future__ import annotations

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["TAGS", "sample_rng", "check_images", "to_uint8", "from_uint8", "shift_image"]

#: One tag per op kind (``shift`` keeps the 7 that ``random_shift`` used before the op list existed).
TAGS = {
    "shift": 7,
    "cutout": 11,
    "random_erasing": 12,
    "trivial_augment": 13,
    "cutmix": 14,
    "mixup": 15,
    "keep_cutout": 16,
    "keep_augment": 17,
    "saliency_mix": 18,
}


def sample_rng(seed: int, epoch: int, sid: int, tag: int, pos: int = 0) -> np.random.Generator:
    """The generator of one sample's draws for one op: keyed by ``(seed, epoch, sample id, tag, position)``."""
    key = [int(seed), int(epoch), int(sid), int(tag)]
    return np.random.default_rng(key if pos == 0 else [*key, int(pos)])


def check_images(x: np.ndarray, field: str = "x") -> None:
    """``x`` must be a batch of channels-first images ``[N, C, H, W]``; a channels-last batch ``[N, H, W, C]``
    (few channels last, many first) is refused with the transpose that fixes it."""
    shape = tuple(int(s) for s in x.shape)
    if x.ndim != 4:
        raise ConfigError(field, shape, "a batch of images [N, C, H, W]", "image ops need image data")
    c, h, w = shape[1:]
    if c > 4 and w <= 4 and h > 4:
        raise ConfigError(
            field,
            shape,
            "channels-first images [N, C, H, W]",
            f"this looks channels-last (NHWC: {c}x{h} pixels, {w} channels); transpose with x.transpose(0, 3, 1, 2)",
        )


def to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One image ``[C, H, W]`` whose values span ``[lo, hi]`` as uint8 ``[H, W, C]`` (``lo`` -> 0, ``hi`` -> 255)."""
    scaled = (img.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def from_uint8(u8: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`to_uint8`: uint8 ``[H, W, C]`` -> float32 ``[C, H, W]`` in ``[lo, hi]``."""
    return (u8.transpose(2, 0, 1).astype(np.float64) * ((hi - lo) / 255.0) + lo).astype(np.float32)


def shift_image(img: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``img [..., H, W]`` moved by ``(dy, dx)`` pixels; uncovered pixels get ``fill``."""
    h, w = img.shape[-2:]
    out = np.full_like(img, fill)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = img[..., ys, xs]
    return out
