"""Deterministic image augmentation keyed by ``(seed, epoch, sample id)``.

Keying by the global sample id (not by the position in a batch or by the worker) makes augmentation
exactly reproducible after a resume and independent of how a global batch is split across workers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_shift"]


def random_shift(x: np.ndarray, ids: np.ndarray, seed: int, epoch: int, max_shift: int) -> np.ndarray:
    """Translate each image ``[C, H, W]`` by up to ``max_shift`` pixels in each axis, zero-filled
    (zero is the background after standardisation only approximately, so the fill value is the image's
    minimum). Returns a new array; ``x`` is unchanged."""
    if max_shift <= 0:
        return x
    out = np.empty_like(x)
    h, w = x.shape[-2:]
    for i, sid in enumerate(ids):
        dy, dx = np.random.default_rng([seed, epoch, int(sid), 7]).integers(-max_shift, max_shift + 1, size=2)
        img = x[i]
        out[i] = img.min()
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i][..., yd, xd] = img[..., ys, xs]
    return out
