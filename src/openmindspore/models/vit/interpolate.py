"""Bicubic resampling of position-embedding grids, exactly as PyTorch computes it.

``torch.nn.functional.interpolate(x, size, mode="bicubic", align_corners=False)`` is separable: each
output row/column is a 4-tap cubic convolution (A = -0.75) of the input, with source coordinate
``(dst + 0.5) * (in / out) - 0.5`` computed in float32, the tap index clamped to the border and the
fraction clamped to [0, 1]. MindSpore's own bicubic kernel uses different coefficients, so here the
resampling is two fixed matrices ``Wy [out_h, in_h]`` and ``Wx [out_w, in_w]`` built on the host and
applied with two matrix products (differentiable w.r.t. the grid, cheap: no per-pixel Python).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from mindspore import Tensor, ops

__all__ = ["bicubic_matrix", "resize_grid", "resize_grid_numpy"]

_A = -0.75  # PyTorch's cubic convolution constant


def _cubic_coeffs(t: np.float32) -> np.ndarray:
    """The four tap weights for fraction ``t`` in [0, 1] (PyTorch's get_cubic_upsample_coefficients)."""
    a = np.float32(_A)
    one = np.float32(1.0)

    def near(x: np.float32) -> np.float32:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + one

    def far(x: np.float32) -> np.float32:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    t = np.float32(t)
    return np.array([far(t + one), near(t), near(one - t), far(2 - t)], dtype=np.float32)


@lru_cache(maxsize=128)
def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Resampling matrix ``W [out_size, in_size]`` (float32) so that ``y = W @ x`` along one axis.

    Equal to one axis of PyTorch's bicubic ``align_corners=False`` resize (identity when sizes match).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bicubic_matrix: sizes must be >= 1, got in={in_size}, out={out_size}")
    w = np.zeros((out_size, in_size), dtype=np.float32)
    if in_size == out_size:
        np.fill_diagonal(w, 1.0)
        return w
    scale = np.float32(in_size) / np.float32(out_size)
    for i in range(out_size):
        real = scale * (np.float32(i) + np.float32(0.5)) - np.float32(0.5)
        idx = min(int(np.floor(real)), in_size - 1)
        t = min(max(real - np.float32(idx), np.float32(0.0)), np.float32(1.0))
        for k, c in enumerate(_cubic_coeffs(t)):
            j = min(max(idx - 1 + k, 0), in_size - 1)
            w[i, j] += c
    w.setflags(write=False)
    return w


@lru_cache(maxsize=64)
def _matrices(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    return Tensor(bicubic_matrix(in_hw[0], out_hw[0])), Tensor(bicubic_matrix(in_hw[1], out_hw[1]))


def resize_grid(grid: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """Resize token grids ``[D, in_h*in_w, C] -> [D, out_h*out_w, C]`` (row-major tokens).

    ``D`` is any leading batch (1 for a position embedding, depth for mid-position embeddings).
    Returns the input unchanged when the sizes match.
    """
    if tuple(in_hw) == tuple(out_hw):
        return grid
    d, n, c = grid.shape
    ih, iw = in_hw
    oh, ow = out_hw
    if n != ih * iw:
        raise ValueError(f"resize_grid: {n} tokens do not form a {ih}x{iw} grid")
    wy, wx = _matrices((ih, iw), (oh, ow))
    x = grid.reshape(d, ih, iw, c)
    x = ops.matmul(wx, x)  # [D, ih, ow, C]
    x = ops.matmul(wy, x.reshape(d, ih, ow * c))  # [D, oh, ow*C]
    return x.reshape(d, oh * ow, c)


def resize_grid_numpy(grid: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """numpy version for ``grid [N, C, H, W]`` (NCHW like torch) -> ``[N, C, out_h, out_w]``."""
    wy = bicubic_matrix(grid.shape[2], out_hw[0])
    wx = bicubic_matrix(grid.shape[3], out_hw[1])
    return np.einsum("ph,nchw,qw->ncpq", wy, grid.astype(np.float32), wx).astype(np.float32)
