"""Channels-last (NHWC) layers for the spec-driven CNN on CPU.

MindSpore's CPU kernels run fast on contiguous tensors but slowly on the strided views a transpose
leaves behind (a ReLU after an NCHW<->NHWC view costs ~8x a ReLU on contiguous memory), and an
im2col convolution is naturally channels-last. So on CPU the CNN converts its input to NHWC once,
keeps every activation contiguous NHWC, and converts back to NCHW order only where features are
flattened for a dense layer and around pooling (MindSpore's NCHW pooling kernels with two transposes
beat every channels-last formulation measured, see :class:`PoolCL`). The model computes exactly the
function of the NCHW layers (same parameter names and shapes, same flatten order; tested), and every
layer compiles in graph mode, which is what makes the CPU training step fast (see ``Trainer``).

All cells here take and return ``[N, H, W, C]`` unless noted; shapes are fixed at build time, so the
im2col indices are constants of the cell.
"""

from __future__ import annotations

import math

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from openmindspore.models import kernels
from openmindspore.models.conv import im2col_index

__all__ = ["ConvCL", "PoolCL", "BatchNormCL", "GlobalPoolCL", "FlattenCL", "ToChannelsLast"]


class ToChannelsLast(nn.Cell):
    """``[N, C, H, W] -> [N, H, W, C]`` (contiguous)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = kernels.Permute(to_nchw=False) if kernels.available() else None

    def construct(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            return x.reshape(x.shape[0], x.shape[2], x.shape[3], 1)
        if self.kernel is not None:
            return self.kernel(x)
        return x.transpose(0, 2, 3, 1).contiguous()


class FlattenCL(nn.Cell):
    """``[N, H, W, C] -> [N, C*H*W]`` in NCHW order, so a following dense layer sees the NCHW features."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = kernels.Permute(to_nchw=True) if kernels.available() else None

    def construct(self, x: Tensor) -> Tensor:
        if x.shape[3] == 1 or (x.shape[1] == 1 and x.shape[2] == 1):
            return x.reshape(x.shape[0], -1)
        if self.kernel is not None:
            return self.kernel(x).reshape(x.shape[0], -1)
        return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


def padded_patches(h: int, w: int, kernel: int, stride: int, padding: int) -> tuple[np.ndarray, int, int]:
    """im2col indices (ordered out_row, out_col, k_row, k_col) into a flat ``h*w`` image; positions in the
    zero padding index ``h*w``, a zero row the caller appends (padding by indexing: an explicit ``ops.pad``
    has a backward that reads stale values inside a compiled graph in MindSpore 2.10). Returns
    ``(index int32, Ho, Wo)``."""
    hp, wp = h + 2 * padding, w + 2 * padding
    idx, ho, wo = im2col_index(hp, wp, kernel, kernel, (stride, stride))
    if padding:
        rows, cols = np.divmod(np.arange(hp * wp), wp)
        rows, cols = rows - padding, cols - padding
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        idx = np.where(inside, rows * w + cols, h * w)[idx]
    return idx.astype(np.int32), ho, wo


class ConvCL(nn.Cell):
    """Convolution as one gather (im2col) and one MatMul, equal to ``nn.Conv2d(pad_mode="pad")``.

    Differentiated by MindSpore's own rules: compiled, they are as fast as the hand-written backward of
    ``conv._GatherMatmul`` (measured), so the graph needs no custom bprop.

    ``weight [out, in, k, k]`` and ``bias [out]`` have ``Conv2d``'s names, shapes and initialisation
    (PyTorch's Kaiming-uniform, from ``seed``). Input ``[N, H, W, in]`` of the size given at build.
    ``relu``: a ReLU fused after the convolution; ``need_dx=False``: no input gradient (network input);
    ``need_dw=False``: no weight/bias gradient (zeros; an input-only model, e.g. for saliency maps).
    With the C++ kernels (:mod:`openmindspore.models.kernels`) the whole layer is one operator.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        padding: int,
        in_hw: tuple[int, int],
        seed: int | None = None,
        relu: bool = False,
        need_dx: bool = True,
        need_dw: bool = True,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.weight = Parameter(
            Tensor(rng.uniform(-bound, bound, (out_channels, in_channels, kernel, kernel)).astype(np.float32)),
            name="weight",
        )
        self.bias = Parameter(Tensor(rng.uniform(-bound, bound, (out_channels,)).astype(np.float32)), name="bias")
        self.cin, self.cout, self.pad = in_channels, out_channels, padding
        h, w = in_hw
        idx, self.ho, self.wo = padded_patches(h, w, kernel, stride, padding)
        self.pointwise = kernel == 1 and stride == 1 and padding == 0
        self.idx = Tensor(idx)
        self.hw = h * w
        self.relu = relu
        self.kernel = kernels.ConvOp(stride, padding, relu, need_dx, need_dw) if kernels.available() else None

    def construct(self, x: Tensor) -> Tensor:
        if self.kernel is not None:
            return self.kernel(x, self.weight, self.bias)
        n = x.shape[0]
        w = self.weight.transpose(0, 2, 3, 1).reshape(self.cout, -1)
        if self.pointwise:
            out = ops.matmul(x.reshape(-1, self.cin), w.T)
        else:
            flat = x.reshape(n, self.hw, self.cin)
            if self.pad > 0:
                flat = ops.concat((flat, ops.zeros((n, 1, self.cin), flat.dtype)), 1)
            cols = ops.gather(flat, self.idx, 1)
            out = ops.matmul(cols.reshape(-1, w.shape[1]), w.T)
        out = (out + self.bias).reshape(n, self.ho, self.wo, self.cout)
        return ops.relu(out) if self.relu else out


class PoolCL(nn.Cell):
    """Max or average pooling, ``pad_mode="valid"``: MindSpore's own ``nn.MaxPool2d`` / ``nn.AvgPool2d``
    between two transposes (NHWC -> NCHW -> NHWC).

    Its CPU kernels (forward and gradient) beat every channels-last formulation measured: 3.6 ms for
    forward+backward of a 2x2 max-pool on 64x28x28x32 including both transposes, vs 10.3 ms for a
    reshape + two ``ArgMaxWithValue`` reductions (whose gradient scatters) and more for comparisons
    against the argmax (compiled, this machine). With the C++ kernels (:mod:`openmindspore.models.kernels`)
    max-pooling runs channels-last as one operator instead.
    """

    def __init__(self, mode: str, kernel: int, stride: int, in_hw: tuple[int, int] | None = None) -> None:
        super().__init__()  # in_hw: kept for the callers; the kernels take any size
        pool = nn.MaxPool2d if mode == "max" else nn.AvgPool2d
        self.pool = pool(kernel_size=kernel, stride=stride, pad_mode="valid")
        self.kernel = kernels.MaxPoolOp(kernel, stride) if mode == "max" and kernels.available() else None

    def construct(self, x: Tensor) -> Tensor:
        if self.kernel is not None:
            return self.kernel(x)
        return self.pool(x.transpose(0, 3, 1, 2).contiguous()).transpose(0, 2, 3, 1).contiguous()


class BatchNormCL(nn.BatchNorm1d):
    """Batch norm over ``N, H, W`` per channel; parameters named like ``nn.BatchNorm2d``'s."""

    def construct(self, x: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[3])
        if self.training:
            y = self.bn_train(flat, self.gamma, self.beta, self.moving_mean, self.moving_variance)[0]
        else:
            y = self.bn_infer(
                flat.reshape(-1, shape[3], 1, 1), self.gamma, self.beta, self.moving_mean, self.moving_variance
            )[0]
        return y.reshape(shape)


class GlobalPoolCL(nn.Cell):
    """``[N, H, W, C] -> [N, C]`` by mean or max over the spatial axes."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.is_max = mode == "max"

    def construct(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[3])
        return ops.max(flat, 1)[0] if self.is_max else ops.mean(flat, 1)
