"""Key-feature (saliency-guided) augmentation: ops that know where the object is.

They take saliency maps as arrays (``[N, H, W]``, larger = more important; the ``train`` layer computes
them) and never compute one:

* :func:`keep_cutout` / :func:`keep_augment` (KeepAugment, Gong et al. 2021): cutout, or TrivialAugment,
  applied to the image, then the ``keep x keep`` window of largest saliency mass restored, so that region
  is **bitwise untouched** and only the rest is erased or augmented;
* :func:`saliency_mix` (after SaliencyMix, Uddin et al. 2021): the partner's patch centred on its saliency
  peak is pasted over the target's **least** salient window of the same size; labels are weighted by
  the pasted area. The partner is drawn by key from the whole training set, not from the batch.

Windows are found on integral images (summed in float64; ties go to the first window in row-major order).
"""

from __future__ import annotations

import numpy as np

from openmindspore.data.augment._common import TAGS
from openmindspore.data.augment.erasing import cutout
from openmindspore.data.augment.mixing import mix_draws, mix_labels
from openmindspore.data.augment.trivial import trivial_augment

__all__ = [
    "integral_images",
    "window_sums",
    "top_window",
    "bottom_window",
    "keep_cutout",
    "keep_augment",
    "saliency_mix",
    "patch_side",
]


def integral_images(maps: np.ndarray) -> np.ndarray:
    """``[N, H + 1, W + 1]`` float64 integral images (a zero first row and column) of ``maps [N, H, W]``."""
    n, h, w = maps.shape
    ii = np.zeros((n, h + 1, w + 1), np.float64)
    ii[:, 1:, 1:] = maps.astype(np.float64).cumsum(1).cumsum(2)
    return ii


def _sums(ii: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Window sums from integral images ``ii [..., H + 1, W + 1]``."""
    return ii[..., kh:, kw:] - ii[..., :-kh, kw:] - ii[..., kh:, :-kw] + ii[..., :-kh, :-kw]


def window_sums(maps: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Saliency mass of every ``kh x kw`` window: ``[N, H - kh + 1, W - kw + 1]`` (float64)."""
    return _sums(integral_images(maps), kh, kw)


def _argbest(sums: np.ndarray, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    flat = sums.reshape(len(sums), -1)
    best = flat.argmax(1) if largest else flat.argmin(1)
    return np.divmod(best, sums.shape[2])


def top_window(maps: np.ndarray, kh: int, kw: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners ``(rows, cols)`` of each map's ``kh x kw`` window of largest mass."""
    return _argbest(window_sums(maps, kh, kw), largest=True)


def bottom_window(maps: np.ndarray, kh: int, kw: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners ``(rows, cols)`` of each map's ``kh x kw`` window of least mass."""
    return _argbest(window_sums(maps, kh, kw), largest=False)


def _restore(out: np.ndarray, x: np.ndarray, maps: np.ndarray, keep: int) -> np.ndarray:
    rows, cols = top_window(maps, keep, keep)
    for i, (r, c) in enumerate(zip(rows, cols)):
        out[i, :, r : r + keep, c : c + keep] = x[i, :, r : r + keep, c : c + keep]
    return out


def keep_cutout(
    x: np.ndarray,
    maps: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    size: int,
    keep: int,
    fill: float,
    patches: int = 1,
    pos: int = 0,
) -> np.ndarray:
    """Cutout (``patches`` squares of side ``size`` filled with ``fill``) everywhere but the ``keep x keep``
    window of largest saliency, which stays bitwise as in ``x``. Returns a new array."""
    out = cutout(x, ids, seed, epoch, size, fill, patches, pos, tag=TAGS["keep_cutout"])
    return _restore(out, x, maps, keep)


def keep_augment(
    x: np.ndarray,
    maps: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    keep: int,
    lo: float,
    hi: float,
    bins: int = 31,
    pos: int = 0,
) -> np.ndarray:
    """TrivialAugmentWide on the image, then the ``keep x keep`` window of largest saliency restored
    bitwise. Returns a new array."""
    out = trivial_augment(x, ids, seed, epoch, lo, hi, bins, pos, tag=TAGS["keep_augment"])
    return _restore(out, x, maps, keep)


def patch_side(side: int, lam: float) -> int:
    """Side of the pasted patch for ``lambda``: ``int(side * sqrt(1 - lam))``, between 1 and ``side - 1``."""
    f = np.float32
    return min(max(int(f(side) * f(np.sqrt(f(1.0) - f(lam)))), 1), side - 1)


def saliency_mix(
    x: np.ndarray,
    soft: np.ndarray,
    maps: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    pool_maps: np.ndarray,
    alpha: float = 1.0,
    p: float = 1.0,
    pos: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste each sample's partner patch (side ``sqrt(1 - lam)`` of the image's, ``lam ~ Beta(alpha, alpha)``)
    cut around the partner's saliency peak over the sample's least salient window; the label keeps
    ``1 - area`` of the sample's and takes ``area`` of the partner's (area = the pasted share of the image).
    ``maps``: the batch's maps; ``pool_maps``: every training row's (for the partners). Returns new
    ``(x, soft)``."""
    out, h, w = x.copy(), x.shape[-2], x.shape[-1]
    keep = np.ones(len(x), np.float32)
    draws = mix_draws(ids, seed, epoch, TAGS["saliency_mix"], pos, len(pool_x), alpha, p, h, w)
    partners = np.array([d.partner for d in draws], dtype=np.int64)
    peaks = np.divmod(
        pool_maps[partners].reshape(len(partners), h * w).argmax(axis=1), w
    )  # each partner's saliency peak
    applied = [i for i, d in enumerate(draws) if d.apply]
    ii = integral_images(maps[applied])  # once for the batch (each row as bottom_window would make it)
    for k, i in enumerate(applied):
        d = draws[i]
        ph, pw = patch_side(h, d.lam), patch_side(w, d.lam)
        peak_r, peak_c = int(peaks[0][i]), int(peaks[1][i])
        sr, sc = min(max(peak_r - ph // 2, 0), h - ph), min(max(peak_c - pw // 2, 0), w - pw)
        dr, dc = divmod(int(_sums(ii[k], ph, pw).argmin()), w - pw + 1)  # the least salient window
        out[i, :, dr : dr + ph, dc : dc + pw] = pool_x[d.partner][:, sr : sr + ph, sc : sc + pw]
        keep[i] = np.float32(1.0) - np.float32(ph * pw) / np.float32(h * w)
    return out, mix_labels(soft, pool_y[partners], keep)
