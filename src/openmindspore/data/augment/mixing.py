"""Mixing baselines with soft labels: CutMix (MindSpore's ``vision.CutMixBatch``) and MixUp (``MixUpBatch``),
keyed per sample.

MindSpore mixes each image with a partner from a shuffle of its batch (MixUp: one ``lambda`` per batch).
Here each sample draws its partner from the **whole training set** and its own ``lambda ~ Beta(alpha,
alpha)`` from its key, so a sample's result does not depend on the batch it is in or on how the batch is
split over workers. The box rule (:func:`cutmix_box`) and the label rule (``lam' y + (1 - lam') y_partner``
with ``lam'`` = the share of the image left unpasted) are MindSpore's, tested against it.

Labels are soft, ``[N, classes]`` float32 rows summing to 1; the trainer then uses its soft-label loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openmindspore.data.augment._common import TAGS, sample_rngs

__all__ = ["MixDraw", "mix_draws", "cutmix_box", "cutmix", "mixup", "one_hot", "mix_labels"]


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """``[N]`` int labels -> ``[N, classes]`` float32."""
    out = np.zeros((len(y), num_classes), np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def mix_labels(soft: np.ndarray, partner_y: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``keep * soft + (1 - keep) * one_hot(partner)`` per row (MindSpore's ``label_lam`` rule), float32."""
    k = keep.astype(np.float32)[:, None]
    other = one_hot(partner_y, soft.shape[1])
    return (k * soft + (np.float32(1) - k) * other).astype(np.float32)


@dataclass(frozen=True)
class MixDraw:
    """One sample's draws for a mixing op: whether it mixes, its partner row, ``lambda`` and a point."""

    apply: bool
    partner: int
    lam: float
    cy: int
    cx: int


def mix_draws(
    ids: np.ndarray, seed: int, epoch: int, tag: int, pos: int, n_rows: int, alpha: float, p: float, h: int, w: int
) -> list[MixDraw]:
    """Each sample's :class:`MixDraw` from its key: partner uniform over the ``n_rows`` training rows,
    ``lambda ~ Beta(alpha, alpha)``, applied with probability ``p``, a point uniform in ``[0, h] x [0, w]``."""
    out = []
    for rng in sample_rngs(seed, epoch, ids, tag, pos):
        partner = int(rng.integers(n_rows))
        lam = float(np.float32(rng.beta(alpha, alpha)))
        apply = bool(rng.random() < p)
        cy, cx = int(rng.integers(h + 1)), int(rng.integers(w + 1))  # = rng.integers(0, [h + 1, w + 1]), faster
        out.append(MixDraw(apply, partner, lam, cy, cx))
    return out


def cutmix_box(h: int, w: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """``CutMixBatchOp::GetCropBox``: a box of ``sqrt(1 - lam)`` of each side centred at ``(cy, cx)``,
    clamped as MindSpore clamps it (corners into the image, 1 to side - 1 pixels a side). Returns
    ``(top, left, height, width)``."""
    f = np.float32
    ratio = f(np.sqrt(f(1.0) - f(lam)))
    cut_w, cut_h = int(f(w) * ratio), int(f(h) * ratio)
    x0, y0 = min(max(cx - cut_w // 2, 0), w - 1), min(max(cy - cut_h // 2, 0), h - 1)
    x1, y1 = min(max(cx + cut_w // 2, 0), w - 1), min(max(cy + cut_h // 2, 0), h - 1)
    return y0, x0, min(max(y1 - y0, 1), h - 1), min(max(x1 - x0, 1), w - 1)


def cutmix(
    x: np.ndarray,
    soft: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    alpha: float = 1.0,
    p: float = 1.0,
    pos: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a box of each sample's partner (a row of ``pool_x``) at the same place; labels weighted by
    area. Returns new ``(x, soft)``."""
    out, h, w = x.copy(), x.shape[-2], x.shape[-1]
    keep = np.ones(len(x), np.float32)
    draws = mix_draws(ids, seed, epoch, TAGS["cutmix"], pos, len(pool_x), alpha, p, h, w)
    for i, d in enumerate(draws):
        if d.apply:
            top, left, bh, bw = cutmix_box(h, w, d.lam, d.cy, d.cx)
            out[i, :, top : top + bh, left : left + bw] = pool_x[d.partner][:, top : top + bh, left : left + bw]
            keep[i] = np.float32(1.0) - np.float32(bh * bw) / np.float32(h * w)
    partners = np.array([d.partner for d in draws], dtype=np.int64)
    return out, mix_labels(soft, pool_y[partners], keep)


def mixup(
    x: np.ndarray,
    soft: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    alpha: float = 1.0,
    pos: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``lam x + (1 - lam) x_partner`` with labels mixed alike (MindSpore's ``MixUpBatch`` formula, one
    ``lam`` per sample). Returns new ``(x, soft)``."""
    draws = mix_draws(ids, seed, epoch, TAGS["mixup"], pos, len(pool_x), alpha, 1.0, x.shape[-2], x.shape[-1])
    lam = np.array([d.lam for d in draws], np.float32)
    partners = np.array([d.partner for d in draws], dtype=np.int64)
    shape = (len(x),) + (1,) * (x.ndim - 1)
    out = (lam.reshape(shape) * x + (np.float32(1) - lam).reshape(shape) * pool_x[partners]).astype(np.float32)
    return out, mix_labels(soft, pool_y[partners], lam)
