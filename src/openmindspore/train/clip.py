"""Gradient clipping by global L2 norm, as ``torch.nn.utils.clip_grad_norm_`` (owns no state).

The norm is that of *all* parameters' gradients together, taken after the gradients are summed over
workers and before the optimizer's update; when ``max_norm / (norm + 1e-6) < 1`` every gradient is
multiplied by that factor (float32), otherwise left as it is. Squared norms are accumulated in float64,
per array in parameter order (numpy's pairwise sum: independent of thread counts), so the factor is the
same on every rank and in a resumed or recovered run. A sharded (ZeRO-1) update sums per-shard squared
norms over ranks in rank order (:func:`clip_scale` of that sum).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["EPS", "clip_arrays", "clip_scale", "sq_norm"]

EPS = 1e-6  # torch's clip_grad_norm_ epsilon


def sq_norm(arrays: Iterable[np.ndarray]) -> float:
    """Sum of squares of every element of ``arrays`` (float64, in order)."""
    total = 0.0
    for a in arrays:
        total += float(np.square(a, dtype=np.float64).sum())
    return total


def clip_scale(sq: float, max_norm: float | None) -> float | None:
    """The factor to multiply the gradients by for a global squared norm ``sq``, or ``None`` (leave them)."""
    if max_norm is None:
        return None
    scale = float(max_norm) / (float(np.sqrt(sq)) + EPS)
    return scale if scale < 1.0 else None


def clip_arrays(arrays: list[np.ndarray], max_norm: float | None) -> tuple[list[np.ndarray], float | None]:
    """``arrays`` (host gradients) clipped to global norm ``max_norm`` (new arrays where scaled), and the
    factor applied (``None``: unchanged, the same arrays)."""
    scale = clip_scale(sq_norm(arrays), max_norm) if max_norm is not None else None
    if scale is None:
        return arrays, None
    f = np.float32(scale)
    return [a * f for a in arrays], scale
