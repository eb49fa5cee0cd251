"""OpenMindSpore's C++ CPU kernels for vision transformers (ViT, YOLOS): exact-erf GELU, LayerNorm,
linear layers on oneDNN's sgemm in thread-count-independent tiles, the patch embedding's patches, and
softmax attention (``q k^T``, softmax, ``v`` per 256-query block, never materialising the whole
``[B, H, N, N]`` score tensor) as MindSpore ``Custom`` aot operators, each with a hand-written backward.

Why: MindSpore 2.10's CPU ``erf`` is scalar (GELU took ~6x PyTorch's time), its softmax and the
reshapes/transposes around attention each make a full pass over ``[B, H, N, N]``, and its MatMul runs
single-threaded tiles for the token-major products of a transformer. The library
(``transformer_kernels.cpp``) is built and cached exactly like :mod:`openmindspore.models.kernels` (same
compiler flags, cache directory, ``OMS_CPU_KERNELS=0`` switch); it owns its own thread count
(:func:`set_threads`, default ``OMP_NUM_THREADS`` else the usable CPUs). Results do not depend on the
thread count.
"""

from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.models import kernels

__all__ = [
    "available",
    "library_path",
    "set_threads",
    "GeluOp",
    "LayerNormOp",
    "LinearOp",
    "AttentionOp",
    "SelfAttention",
]

_SRC = Path(__file__).with_name("transformer_kernels.cpp")
_state: dict = {}


def library_path() -> Path | None:
    """The compiled transformer kernel library (building it if needed), or None when the kernels are off."""
    if "lib" not in _state:
        lib = kernels._build(_SRC) if kernels.library_path() is not None else None  # same switches and cache
        _state["lib"] = lib
        if lib is not None:
            _state["dll"] = kernels.load_library(lib)
    return _state["lib"]


def available() -> bool:
    """True when the transformer kernels can be used (the CNN kernels are on and this library built)."""
    return kernels.available() and library_path() is not None


def set_threads(n: int) -> None:
    """Threads each transformer kernel call may use."""
    if library_path() is not None:
        _state["dll"].oms_set_threads(max(1, int(n)))


def _op(fn: str, out_shape, out_dtype, bprop=None, settings: tuple = ()) -> ops.Custom:
    op = ops.Custom(f"{library_path()}:{fn}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot", bprop=bprop)
    op.add_prim_attr("oms_settings", ",".join(map(str, settings)))  # see kernels._custom
    return op


def _f32(*_):
    return ms.float32


def _same(s, *_):
    return s


class GeluOp(nn.Cell):
    """Exact GELU ``0.5 x (1 + erf(x / sqrt 2))`` of any float32 tensor (vectorised erf, |error| < 1e-6)."""

    def __init__(self) -> None:
        super().__init__()
        bwd = _op("oms_gelu_bwd", _same, _f32)

        def bprop(x, out, dout):
            return (bwd(x, dout),)

        self.fwd = _op("oms_gelu_fwd", _same, _f32, bprop)

    def construct(self, x: Tensor) -> Tensor:
        return self.fwd(x)


class LayerNormOp(nn.Cell):
    """LayerNorm of ``x [R, D]`` over ``D`` with ``weight [D]``, ``bias [D]`` and epsilon ``eps``."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = Tensor(np.array([eps], np.float32))
        bwd = _op("oms_layernorm_bwd", lambda xs, ws, *_: (xs, ws, ws), lambda *_: (ms.float32,) * 3)

        def bprop(x, w, b, eps, out, dout):
            dx, dw, db = bwd(x, w, out[1], out[2], dout[0])
            return dx, dw, db, ops.zeros_like(eps)

        self.fwd = _op(
            "oms_layernorm_fwd",
            lambda xs, *_: (xs, xs[:1], xs[:1]),
            lambda *_: (ms.float32,) * 3,
            bprop,
        )

    def construct(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return self.fwd(x, weight, bias, self.eps)[0]


class LinearOp(nn.Cell):
    """``x [R, in] @ weight.T + bias`` with ``weight [out, in]``: one sgemm per tile of an equal split of
    ``[R, out]`` into at most 8 x 8 tiles of >= 384 rows/columns (a function of the shape, not the threads).

    ``kind="residual"``: ``construct(x, weight, bias, res)`` adds ``res [R, out]`` in the same pass (a
    residual connection; differentiable). ``kind="gelu"``: returns ``GELU(x @ weight.T + bias)``, the
    activation applied to each tile in cache; the pre-activation is not kept, so its backward (gradients in
    inference mode: saliency maps) recomputes it with one more product.
    """

    def __init__(self, kind: str = "plain") -> None:
        super().__init__()
        if kind not in ("plain", "residual", "gelu"):
            raise ValueError(f"LinearOp kind {kind!r}: expected plain, residual or gelu")
        self.kind = kind
        bwd = _op("oms_linear_bwd", lambda xs, ws, *_: (xs, ws, ws[:1]), lambda *_: (ms.float32,) * 3)

        def bprop(x, w, b, out, dout):
            return bwd(x, w, dout)

        def bprop_res(x, w, b, res, out, dout):
            dx, dw, db = bwd(x, w, dout)
            return dx, dw, db, dout

        def shape(xs, ws, *_):
            return [xs[0], ws[0]]

        if kind == "plain":
            self.fwd = _op("oms_linear_fwd", shape, _f32, bprop)
        elif kind == "residual":
            self.fwd = _op("oms_linear_res_fwd", shape, _f32, bprop_res)
        else:
            pre = _op("oms_linear_fwd", shape, _f32)
            gelu_bwd = _op("oms_gelu_bwd", _same, _f32)

            def bprop_gelu(x, w, b, out, dout):
                return bwd(x, w, gelu_bwd(pre(x, w, b), dout))

            self.fwd = _op("oms_linear_gelu_fwd", shape, _f32, bprop_gelu)

    def construct(self, x: Tensor, weight: Tensor, bias: Tensor, res: Tensor | None = None) -> Tensor:
        if res is None:
            return self.fwd(x, weight, bias)
        return self.fwd(x, weight, bias, res)


class AttentionOp(nn.Cell):
    """Multi-head softmax attention: ``q, k, v [B, N, D] -> ctx [B, N, D]`` with
    ``ctx = softmax(q k^T * head_dim**-0.5) v`` per head (head ``h`` in columns ``h*hd:(h+1)*hd``)."""

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.attr = Tensor(np.array([heads], np.int32))
        self.scale = Tensor(np.array([head_dim**-0.5], np.float32))
        bwd = _op("oms_attention_bwd", lambda qs, *_: (qs, qs, qs), lambda *_: (ms.float32,) * 3, settings=(heads,))

        def bprop(q, k, v, attr, scale, out, dout):
            dq, dk, dv = bwd(q, k, v, out[0], out[1], dout[0], attr, scale)
            return dq, dk, dv, ops.zeros_like(attr), ops.zeros_like(scale)

        def shape(qs, *_):
            return qs, [qs[0], heads, qs[1]]

        self.fwd = _op("oms_attention_fwd", shape, lambda *_: (ms.float32, ms.float32), bprop, (heads,))

    def construct(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return self.fwd(q, k, v, self.attr, self.scale)[0]


class PatchifyOp(nn.Cell):
    """Non-overlapping ``p x p`` patches: ``x [B, C, H, W] -> [B * (H//p) * (W//p), C*p*p]`` (features in
    ``(channel, row, col)`` order, a conv weight's; rows/cols that fill no patch are dropped)."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.attr = Tensor(np.array([patch], np.int32))
        p = patch
        bwd = _op("oms_unpatchify", lambda cs, xs, *_: xs, _f32, settings=(p,))

        def bprop(x, attr, out, dout):
            return bwd(dout, x, attr), ops.zeros_like(attr)

        def shape(xs, *_):
            return [xs[0] * (xs[2] // p) * (xs[3] // p), xs[1] * p * p]

        self.fwd = _op("oms_patchify", shape, _f32, bprop, (p,))

    def construct(self, x: Tensor) -> Tensor:
        return self.fwd(x, self.attr)


class SelfAttention(nn.Cell):
    """Self-attention with its projections on the kernels: ``x [B, N, D] -> [B, N, D]`` (the ``q, k, v``
    linears, :class:`AttentionOp`, the output linear; no weight is copied); with ``residual [B, N, D]`` the
    result is ``residual + attention`` (added inside the output linear)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.linear = LinearOp()
        self.linear_res = LinearOp("residual")
        self.attn = AttentionOp(heads, dim // heads)
        self.zero_bias = Tensor(np.zeros(dim, np.float32))  # for qkv_bias=False

    def construct(
        self,
        x: Tensor,
        wq: Tensor,
        bq: Tensor | None,
        wk: Tensor,
        bk: Tensor | None,
        wv: Tensor,
        bv: Tensor | None,
        wo: Tensor,
        bo: Tensor,
        residual: Tensor | None = None,
    ) -> Tensor:
        b, n, d = x.shape
        x2 = x.reshape(b * n, d)
        q = self.linear(x2, wq, self.zero_bias if bq is None else bq).reshape(b, n, d)
        k = self.linear(x2, wk, self.zero_bias if bk is None else bk).reshape(b, n, d)
        v = self.linear(x2, wv, self.zero_bias if bv is None else bv).reshape(b, n, d)
        ctx = self.attn(q, k, v)
        if residual is not None:  # residual + output projection in one pass
            return self.linear_res(ctx.reshape(b * n, d), wo, bo, residual.reshape(b * n, d)).reshape(b, n, d)
        return self.linear(ctx.reshape(b * n, d), wo, bo).reshape(b, n, d)
