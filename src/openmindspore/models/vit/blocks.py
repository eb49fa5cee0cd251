"""Transformer building blocks shared by ViT and YOLOS, numerically equal to the Hugging Face reference.

Explicit choices (MindSpore defaults differ from the reference): LayerNorm epsilon comes from the config,
GELU is the exact erf form, attention scaling is ``head_dim ** -0.5``, linear layers are ``x @ W.T + b``
with ``W [out, in]`` (PyTorch layout, so weights convert by name only).
"""

from __future__ import annotations

import math

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from openmindspore.models.kernels import transformer as fused
from openmindspore.models.layers import Dense, Dropout

__all__ = [
    "GELU",
    "LayerNorm",
    "PatchProjection",
    "Linear",
    "attention",
    "fused_attention",
    "gelu",
    "init_normal",
    "trunc_normal",
]

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def trunc_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Normal(0, std) truncated to [-2, 2] (absolute, as ``torch.nn.init.trunc_normal_`` defaults)."""
    x = rng.standard_normal(shape) * std
    bad = np.abs(x) > 2.0
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum())) * std
        bad = np.abs(x) > 2.0
    return x.astype(np.float32)


def init_normal(cell: nn.Cell, rng: np.random.Generator, std: float) -> None:
    """Hugging Face init: Linear/patch weights ~ N(0, std), biases 0, LayerNorm (1, 0)."""
    for _, sub in cell.cells_and_names():
        if isinstance(sub, (Dense, PatchProjection)):
            sub.weight.set_data(Tensor(trunc_normal(rng, tuple(sub.weight.shape), std)))
            if sub.bias is not None:
                sub.bias.set_data(Tensor(np.zeros(tuple(sub.bias.shape), np.float32)))


class Linear(Dense):
    """``y = x @ weight.T + bias`` with ``weight [out, in]`` (PyTorch layout, HF parameter names).

    Any leading shape: ``[..., in] -> [..., out]``; one 2-D product: the C++ kernel
    (:class:`~openmindspore.models.kernels.transformer.LinearOp`) when available, else MindSpore's MatMul
    with ``transpose_b`` (no weight copy).
    """

    def __init__(self, in_features: int, out_features: int, has_bias: bool = True, seed: int | None = None):
        super().__init__(in_features, out_features, has_bias, seed)
        self._mm = ops.MatMul(transpose_b=True)
        self.kernel = fused.LinearOp() if has_bias and fused.available() else None

    def construct(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        if self.kernel is not None:
            y = self.kernel(x.reshape(-1, self.in_features), self.weight, self.bias)
        else:
            y = self._mm(x.reshape(-1, self.in_features), self.weight)
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(lead + (self.out_features,))


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with parameters ``weight``/``bias`` (HF names) and an explicit epsilon."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(dim, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(dim, np.float32)), name="bias")
        self.eps = float(eps)
        self._ln = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=self.eps)
        self.kernel = fused.LayerNormOp(self.eps) if fused.available() else None

    def construct(self, x: Tensor) -> Tensor:
        if self.kernel is not None:
            return self.kernel(x.reshape(-1, x.shape[-1]), self.weight, self.bias).reshape(x.shape)
        return self._ln(x, self.weight, self.bias)[0]


class PatchProjection(nn.Cell):
    """Non-overlapping ``p x p`` patches -> vectors: ``Conv2d(C, D, kernel=p, stride=p, bias=True)``.

    Because kernel == stride there is no overlap, so the convolution is a reshape plus one MatMul
    (exactly what the reference's convolution computes; trailing rows/cols that do not fill a patch are
    dropped, as a strided convolution does). ``weight [D, C, p, p]``, ``bias [D]``.
    Input ``[B, C, H, W]`` -> output ``[B, (H//p)*(W//p), D]`` (row-major patch order).
    """

    def __init__(self, in_channels: int, dim: int, patch: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(in_channels * patch * patch)
        self.in_channels, self.dim, self.patch = in_channels, dim, patch
        self.weight = Parameter(
            Tensor(rng.uniform(-bound, bound, (dim, in_channels, patch, patch)).astype(np.float32)), name="weight"
        )
        self.bias = Parameter(Tensor(rng.uniform(-bound, bound, (dim,)).astype(np.float32)), name="bias")
        on = fused.available()
        self.patchify: fused.PatchifyOp | None = fused.PatchifyOp(patch) if on else None
        self.linear: fused.LinearOp | None = fused.LinearOp() if on else None

    def construct(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        p = self.patch
        gh, gw = h // p, w // p
        if self.patchify is not None and self.linear is not None:
            cols = self.patchify(x)
            return self.linear(cols, self.weight.reshape(self.dim, c * p * p), self.bias).reshape(b, gh * gw, self.dim)
        if gh * p != h or gw * p != w:
            x = x[:, :, : gh * p, : gw * p]
        x = x.reshape(b, c, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).reshape(b * gh * gw, c * p * p)
        y = ops.matmul(x, self.weight.reshape(self.dim, c * p * p).T) + self.bias
        return y.reshape(b, gh * gw, self.dim)


def gelu(x: Tensor) -> Tensor:
    """Exact GELU ``0.5 x (1 + erf(x / sqrt 2))`` (the reference's ``"gelu"``, not the tanh approximation)."""
    return x * (ops.erf(x * _SQRT1_2) + 1.0) * 0.5


class GELU(nn.Cell):
    """Exact GELU as a cell: the vectorised C++ kernel when available, else :func:`gelu` (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = fused.GeluOp() if fused.available() else None

    def construct(self, x: Tensor) -> Tensor:
        return self.kernel(x) if self.kernel is not None else gelu(x)


def fused_attention(heads: int, dim: int) -> fused.SelfAttention | None:
    """The C++ self-attention for a layer (None when the kernels are off). With attention dropout the
    caller uses it only in eval mode (the kernel has no dropout)."""
    return fused.SelfAttention(dim, heads) if fused.available() else None


_BMM_TB = ops.BatchMatMul(transpose_b=True)
_BMM_TA = ops.BatchMatMul(transpose_a=True)
_BMM_TATB = ops.BatchMatMul(transpose_a=True, transpose_b=True)


def attention(
    x: Tensor,
    wq: Tensor,
    bq: Tensor | None,
    wk: Tensor,
    bk: Tensor | None,
    wv: Tensor,
    bv: Tensor | None,
    wo: Tensor,
    bo: Tensor,
    heads: int,
    dropout: Dropout | None = None,
) -> Tensor:
    """Multi-head self-attention including the output projection: ``x [B, N, D] -> [B, N, D]``.

    Computes ``softmax((q k^T) * head_dim**-0.5) v`` per head, then ``@ wo.T + bo``. Everything is kept
    "feature-major" (``[.., hd, N]``) so that the only data movement is inside the batched MatMuls
    (transpose flags instead of explicit transposes); Q, K, V come from one MatMul with the three
    ``[D, D]`` weights stacked.
    """
    b, n, d = x.shape
    hd = d // heads
    w = ops.broadcast_to(ops.concat((wq, wk, wv), 0), (b, 3 * d, d))  # [B, 3D, D]
    qkv_t = _BMM_TB(w, x)  # [B, 3D, N]
    if bq is not None:
        qkv_t = qkv_t + ops.concat((bq, bk, bv), 0).reshape(3 * d, 1)
    qkv_t = qkv_t.reshape(b, 3, heads, hd, n)
    q_t, k_t, v_t = qkv_t[:, 0], qkv_t[:, 1], qkv_t[:, 2]  # [B, H, hd, N]
    scores = _BMM_TA(q_t, k_t) * (hd**-0.5)  # [B, H, N, N]
    probs = ops.softmax(scores, -1)
    if dropout is not None:
        probs = dropout(probs)
    ctx_t = _BMM_TB(v_t, probs).reshape(b, d, n)  # [B, D, N] = (probs @ v)^T
    out = _BMM_TATB(ctx_t, ops.broadcast_to(wo, (b, d, d)))  # [B, N, D]
    return out + bo
