"""Small building blocks with explicit, reproducible behaviour.

* :class:`Dense` is initialised from a numpy seed like PyTorch's ``nn.Linear``.
* :class:`Dropout` draws its masks from a counter-based key ``(seed, step, layer, sample)`` set by the
  trainer through :func:`set_noise_key`, so dropout is exactly reproducible after a resume and does not
  depend on how a global batch is split across workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from openmindspore.models import kernels

__all__ = [
    "Dense",
    "Dropout",
    "dropout_mask",
    "activation",
    "set_noise_key",
    "noise_key",
    "current_noise_key",
    "ACTIVATIONS",
]

_NOISE_KEY: dict = {"seed": 0, "step": 0, "samples": None}


def set_noise_key(seed: int, step: int, samples: np.ndarray | None) -> None:
    """Key the random masks of the next forward pass: run seed, global step, global sample ids."""
    _NOISE_KEY.update(seed=int(seed), step=int(step), samples=None if samples is None else np.asarray(samples))


def current_noise_key() -> tuple[int, int, np.ndarray | None]:
    """``(seed, step, sample ids)`` last set by :func:`set_noise_key` (host-side randomness keyed the same
    way as dropout, e.g. a task's augmentation)."""
    return int(_NOISE_KEY["seed"]), int(_NOISE_KEY["step"]), _NOISE_KEY["samples"]


@contextmanager
def noise_key(seed: int, step: int, samples: np.ndarray | None) -> Iterator[None]:
    old = dict(_NOISE_KEY)
    set_noise_key(seed, step, samples)
    try:
        yield
    finally:
        _NOISE_KEY.update(old)


class Dense(nn.Cell):
    """``y = x @ weight.T + bias``; ``weight [out, in]`` initialised U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        has_bias: bool = True,
        seed: int | None = None,
        relu: bool = False,
        need_dx: bool = True,
        need_dw: bool = True,
    ):
        super().__init__()
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(
            Tensor(rng.uniform(-bound, bound, (out_features, in_features)).astype(np.float32)), name="weight"
        )
        self.bias = (
            Parameter(Tensor(rng.uniform(-bound, bound, (out_features,)).astype(np.float32)), name="bias")
            if has_bias
            else None
        )
        # relu: a ReLU fused after the layer; need_dx=False: the input needs no gradient (the network's input);
        # need_dw=False: no weight/bias gradient (zeros: an input-only model, e.g. for saliency maps)
        self.relu = relu
        self.kernel = kernels.DenseOp(relu, need_dx, need_dw) if has_bias and kernels.available() else None
        self.matmul = ops.MatMul(transpose_b=True)  # x @ weight.T without materialising weight.T (~5x on a big MLP)

    def construct(self, x: Tensor) -> Tensor:
        if self.kernel is not None and x.ndim == 2:
            return self.kernel(x, self.weight, self.bias)
        shape = x.shape
        y = self.matmul(x.reshape(-1, shape[-1]), self.weight)
        y = y if self.bias is None else y + self.bias
        y = y.reshape(shape[:-1] + (self.out_features,))
        return ops.relu(y) if self.relu else y


def dropout_mask(
    rate: float,
    layer_id: int,
    seed: int,
    step: int,
    samples: np.ndarray,
    feature_shape: tuple[int, ...],
    channels_last: bool = False,
) -> np.ndarray:
    """Scaled keep-mask ``[n, *feature_shape]`` float32 for samples keyed ``(seed, step, layer_id, sample)``.

    With ``channels_last`` the features are ``(H, W, C)`` and the mask is drawn in ``(C, H, W)`` order
    and transposed, so an NHWC model drops exactly the units its NCHW twin drops.
    """
    draw = (
        (feature_shape[2], feature_shape[0], feature_shape[1])
        if channels_last and len(feature_shape) == 3
        else tuple(feature_shape)
    )
    keep = np.empty((len(samples),) + draw, dtype=np.float32)
    for i, s in enumerate(samples):
        rng = np.random.default_rng([int(seed), int(step), int(layer_id), int(s)])
        keep[i] = rng.random(draw, dtype=np.float32) >= rate
    if channels_last and len(feature_shape) == 3:
        keep = np.ascontiguousarray(keep.transpose(0, 2, 3, 1))
    return keep * np.float32(1.0 / (1.0 - rate))


class Dropout(nn.Cell):
    """Inverted dropout with masks keyed by ``(seed, step, layer_id, sample_id)``; identity in eval.

    In PyNative the mask is drawn from the key set by :func:`set_noise_key`. A compiled training step
    instead draws the masks on the host (:meth:`mask`) and feeds them in as inputs (``takes_mask``).
    """

    def __init__(
        self, rate: float, layer_id: int = 0, feature_shape: tuple[int, ...] | None = None, channels_last: bool = False
    ):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate={rate} must be in [0, 1)")
        self.rate, self.layer_id = float(rate), int(layer_id)
        self.feature_shape, self.channels_last = feature_shape, channels_last
        self.takes_mask = self.rate > 0.0

    def mask(self, seed: int, step: int, samples: np.ndarray) -> np.ndarray:
        if self.feature_shape is None:
            raise ValueError("Dropout.mask needs the layer's feature_shape (give it when building the layer)")
        return dropout_mask(self.rate, self.layer_id, seed, step, samples, self.feature_shape, self.channels_last)

    def construct(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        samples = _NOISE_KEY["samples"]
        n = x.shape[0]
        if samples is None or len(samples) != n:
            samples = np.arange(n)
        keep = dropout_mask(
            self.rate,
            self.layer_id,
            _NOISE_KEY["seed"],
            _NOISE_KEY["step"],
            samples,
            tuple(x.shape[1:]),
            self.channels_last,
        )
        return x * Tensor(keep)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": lambda: nn.GELU(approximate=False),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Cell:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is unknown; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
