"""A fast CPU 2-D convolution: im2col by one gather, then one MatMul.

MindSpore 2.10's native CPU ``Conv2d`` kernel is 10-20x slower than expressing the same convolution
as a gather of patches (im2col, channels-last so the patch matrix needs no transpose) followed by a
single matrix product. :class:`Conv2d` is a drop-in for ``nn.Conv2d`` (NCHW in and out, same parameter
names and shapes) that takes this path on CPU and the native kernel elsewhere (GPU/Ascend have fast
convolutions). Forward and gradients equal ``nn.Conv2d`` to float32 rounding (tested).
"""

from __future__ import annotations

import math
from functools import lru_cache

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from openmindspore.errors import ConfigError

__all__ = ["Conv2d", "conv_output_size", "im2col_index", "use_fast_conv"]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output length along one axis: ``floor((size + pad_total - kernel) / stride) + 1``."""
    return (size + pad_total - kernel) // stride + 1


@lru_cache(maxsize=256)
def im2col_index(hp: int, wp: int, kh: int, kw: int, stride: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """Flat indices into a padded ``hp x wp`` image, ordered (out_row, out_col, k_row, k_col).

    Returns ``(index int32 [Ho*Wo*kh*kw], Ho, Wo)``.
    """
    ho, wo = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
    oi, oj, ki, kj = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    idx = (oi * stride[0] + ki) * wp + (oj * stride[1] + kj)
    return idx.reshape(-1).astype(np.int32), ho, wo


def use_fast_conv() -> bool:
    """True when the im2col path should be used (CPU target)."""
    return ms.get_context("device_target") == "CPU"


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _GatherMatmul(nn.Cell):
    """``gather(x, idx, axis=1).reshape(-1, K) @ w.T`` with a hand-written backward.

    MindSpore's automatic gradient of ``gather`` costs ~10x its forward on CPU; the backward here uses
    one ``index_add`` (col2im) and two MatMuls and gives bitwise the same gradients.
    ``x [N, P, C]`` (channels-last padded image), ``idx [L*K/C]`` int32, ``w [O, K]`` -> ``[N*L, O]``.
    """

    def construct(self, x: Tensor, idx: Tensor, w: Tensor) -> Tensor:
        return ops.matmul(ops.gather(x, idx, 1).reshape(-1, w.shape[1]), w.T)

    def bprop(self, x: Tensor, idx: Tensor, w: Tensor, out: Tensor, dout: Tensor) -> tuple:
        cols = ops.gather(x, idx, 1).reshape(-1, w.shape[1])
        dw = ops.matmul(dout.T, cols)
        dcols = ops.matmul(dout, w).reshape(x.shape[0], -1, x.shape[2])
        dx = ops.index_add(ops.zeros(x.shape, x.dtype), idx, dcols, 1)
        return dx, ops.zeros_like(idx), dw


_GATHER_MATMUL = _GatherMatmul()


class Conv2d(nn.Cell):
    """2-D convolution, NCHW, equal to ``nn.Conv2d(..., pad_mode="pad")``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride: int or (h, w).
        padding: int (symmetric), ``(top, bottom, left, right)``, or ``"same"`` (stride 1, odd kernel).
        has_bias: learnable bias per output channel (explicit: MindSpore's default differs from PyTorch).
        fast: force (True) or forbid (False) the im2col path; ``None`` picks it on CPU.

    Parameters are ``weight [out, in, kh, kw]`` and ``bias [out]``, initialised like PyTorch
    (Kaiming-uniform with a=sqrt(5)) from ``seed`` so that runs are reproducible across processes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple | str = 0,
        has_bias: bool = True,
        fast: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        kh, kw = self.kernel_size
        if padding == "same":
            if self.stride != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                raise ConfigError(
                    "padding", padding, "'same' only with stride 1 and odd kernels", "give an explicit integer padding"
                )
            padding = (kh // 2, kh // 2, kw // 2, kw // 2)
        elif isinstance(padding, int):
            padding = (padding,) * 4
        self.padding = tuple(int(p) for p in padding)
        self.has_bias, self.fast = has_bias, fast
        rng = np.random.default_rng(seed)
        fan_in = in_channels * kh * kw
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.weight = Parameter(
            Tensor(rng.uniform(-bound, bound, (out_channels, in_channels, kh, kw)).astype(np.float32)), name="weight"
        )
        self.bias = (
            Parameter(Tensor(rng.uniform(-bound, bound, (out_channels,)).astype(np.float32)), name="bias")
            if has_bias
            else None
        )

    def extend_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, kernel={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.has_bias}"
        )

    def construct(self, x: Tensor) -> Tensor:
        fast = use_fast_conv() if self.fast is None else self.fast
        return self._im2col(x) if fast else self._native(x)

    def _native(self, x: Tensor) -> Tensor:
        pt, pb, pl, pr = self.padding
        if pt == pb and pl == pr:
            out = ops.conv2d(x, self.weight, None, self.stride, "pad", (pt, pl))
        else:
            out = ops.conv2d(ops.pad(x, (pl, pr, pt, pb)), self.weight, None, self.stride, "valid", 0)
        return out if self.bias is None else out + self.bias.reshape(1, -1, 1, 1)

    def _im2col(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        pt, pb, pl, pr = self.padding
        wmat = self.weight.transpose(0, 2, 3, 1).reshape(self.out_channels, kh * kw * c)
        if kh == kw == 1 and self.stride == (1, 1) and not any(self.padding):
            out = ops.matmul(x.transpose(0, 2, 3, 1).reshape(n * h * w, c), wmat.T)
            ho, wo = h, w
        else:
            if any(self.padding):
                x = ops.pad(x, (pl, pr, pt, pb))
            hp, wp = h + pt + pb, w + pl + pr
            idx, ho, wo = im2col_index(hp, wp, kh, kw, self.stride)
            if ho < 1 or wo < 1:
                raise ValueError(f"Conv2d: input {h}x{w} (padded {hp}x{wp}) is smaller than kernel {kh}x{kw}")
            x = x.transpose(0, 2, 3, 1).reshape(n, hp * wp, c)
            out = _GATHER_MATMUL(x, Tensor(idx), wmat)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)
