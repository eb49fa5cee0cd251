"""Optimizers with explicit, host-visible state (PyTorch's update formulas).

MindSpore's fused ``nn.Adam`` kernel does not give bitwise-identical updates after its state is saved
and restored (measured: ~1e-7 drift after one step), which breaks exact resume. These optimizers keep
their state as plain tensors plus an integer step, compute bias corrections on the host in float64,
and apply the same float32 element-wise ops every step, so a restored optimizer continues bitwise.
"""
from __future__ import annotations

import math

import numpy as np
from mindspore import Parameter, Tensor, ops

__all__ = ["Optimizer", "Adam", "SGD", "create_optimizer"]


def _f32(x: float) -> float:
    """A Python float holding a float32-representable value (MindSpore takes scalars as float32)."""
    return float(np.float32(x))


class Optimizer:
    """Base: ``step(grads, lr)`` updates ``params`` in place; ``state_dict``/``load_state_dict`` exact."""

    slots: tuple[str, ...] = ()

    def __init__(self, params: list[Parameter], weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self.state = {slot: [ops.zeros(p.shape, p.dtype) for p in self.params] for slot in self.slots}

    def step(self, grads: tuple[Tensor, ...], lr: float) -> None:
        self.t += 1
        self._update(grads, lr)

    def _update(self, grads: tuple[Tensor, ...], lr: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"{slot}.{p.name}": t.asnumpy() for slot in self.slots for p, t in zip(self.params, self.state[slot])}
        out["t"] = np.asarray([self.t], dtype=np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(np.asarray(state["t"]).reshape(-1)[0])
        for slot in self.slots:
            self.state[slot] = [Tensor(np.asarray(state[f"{slot}.{p.name}"], dtype=np.float32).reshape(p.shape))
                                for p in self.params]

    def state_names(self) -> set[str]:
        return {f"{slot}.{p.name}" for slot in self.slots for p in self.params} | {"t"}


class Adam(Optimizer):
    """Adam (``decoupled=False``: L2 added to the gradient) or AdamW (``decoupled=True``)."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False) -> None:
        super().__init__(params, weight_decay)
        self.b1, self.b2, self.eps, self.decoupled = float(betas[0]), float(betas[1]), float(eps), decoupled

    def _update(self, grads, lr) -> None:
        bc1, bc2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        step_size, sqrt_bc2 = _f32(lr / bc1), _f32(math.sqrt(bc2))
        b1, b2, wd, eps = _f32(self.b1), _f32(self.b2), _f32(self.weight_decay), _f32(self.eps)
        m_all, v_all = self.state["exp_avg"], self.state["exp_avg_sq"]
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if self.weight_decay and not self.decoupled:
                g = g + wd * p
            m = m_all[i] * b1 + g * (1 - b1)
            v = v_all[i] * b2 + g * g * (1 - b2)
            m_all[i], v_all[i] = m, v
            new = p * _f32(1.0 - lr * self.weight_decay) if (self.weight_decay and self.decoupled) else p
            ops.assign(p, new - step_size * (m / (ops.sqrt(v) / sqrt_bc2 + eps)))


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum and L2 weight decay, as ``torch.optim.SGD``."""

    slots = ("momentum_buffer",)

    def __init__(self, params, momentum=0.9, weight_decay=0.0) -> None:
        super().__init__(params, weight_decay)
        self.momentum = float(momentum)

    def _update(self, grads, lr) -> None:
        mu, wd, lr32 = _f32(self.momentum), _f32(self.weight_decay), _f32(lr)
        bufs = self.state["momentum_buffer"]
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if self.weight_decay:
                g = g + wd * p
            if self.momentum:
                bufs[i] = g if self.t == 1 else bufs[i] * mu + g
                g = bufs[i]
            ops.assign(p, p - lr32 * g)


def create_optimizer(name: str, params: list[Parameter], weight_decay: float = 0.0, momentum: float = 0.9) -> Optimizer:
    if name == "adam":
        return Adam(params, weight_decay=weight_decay)
    if name == "adamw":
        return Adam(params, weight_decay=weight_decay, decoupled=True)
    return SGD(params, momentum=momentum, weight_decay=weight_decay)
