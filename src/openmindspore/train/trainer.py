"""Single-process training step on MindSpore, split so data-parallel layers can reuse it.

Models that declare ``graph_safe`` (the spec-driven CNN and the MLP) get their forward+backward
compiled into one MindSpore graph (``ms.jit``): on CPU that runs the default CNN's step ~5x faster
than PyNative, which syncs with Python between ops. Dropout masks are drawn on the host from the
``(seed, step, layer, sample)`` key and fed to the graph, so compiled and PyNative steps give the
same result. Other models (ViT, YOLOS) run op by op.

``compute_grads`` evaluates a worker's shard of a global batch and returns gradients already scaled by
``1 / global_batch``: summing them over workers gives the exact global-mean gradient, whatever the
world size. ``apply_grads`` sets the learning rate for the step and runs the optimizer.
"""

from __future__ import annotations

import math
import os
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.data import ResumableSampler, load_dataset, shard
from openmindspore.data.augment import random_shift
from openmindspore.errors import ConfigError
from openmindspore.models import create_model, set_noise_key
from openmindspore.train.config import TrainConfig
from openmindspore.train.optim import create_optimizer
from openmindspore.train.state import TrainState, params_sha256

__all__ = ["Trainer", "build_model", "setup_mindspore"]

_CONTEXT_SET = False


def setup_mindspore() -> None:
    """PyNative context; the training step of graph-safe models is compiled with ``ms.jit``."""
    global _CONTEXT_SET
    if not _CONTEXT_SET:
        os.environ.setdefault("GLOG_v", "3")
        ms.set_context(mode=ms.PYNATIVE_MODE, device_target=os.environ.get("OMS_DEVICE", "CPU"))
        _CONTEXT_SET = True


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Cell:
    kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
    return create_model(
        cfg.model["name"], input_shape=input_shape, num_classes=num_classes, seed=kwargs.pop("seed", cfg.seed), **kwargs
    )


class _TrainLoss(nn.Cell):
    """``sum(loss over the shard) * scale`` with the model in training mode and dropout masks as inputs."""

    def __init__(self, model: nn.Cell, classification: bool) -> None:
        super().__init__(auto_prefix=False)  # keep the model's parameter names (checkpoints use them)
        self.model, self.classification = model, classification

    def construct(self, x: Tensor, y: Tensor, scale: Tensor, masks: tuple) -> Tensor:
        out = self.model.train_forward(x, masks)
        if self.classification:
            loss = ops.cross_entropy(out, y, reduction="sum")
        else:
            loss = ((out.reshape(-1) - y) ** 2).sum()
        return loss * scale


def _compiled_grad_fn(loss: nn.Cell, params: list) -> Any:
    grad_fn = ms.value_and_grad(loss, None, params)

    def step(x: Tensor, y: Tensor, scale: Tensor, masks: tuple) -> tuple:
        return grad_fn(x, y, scale, masks)

    jitted = ms.jit(step)

    def call(x: Tensor, y: Tensor, scale: Tensor, masks: tuple) -> tuple:
        # a plain tuple argument is a compile-time constant (one recompilation per new mask value);
        # mutable() makes the masks graph inputs
        return jitted(x, y, scale, ms.mutable(masks) if masks else masks)

    return call


class Trainer:
    """Model, optimizer, data and sampler of one run; holds the step counter."""

    def __init__(self, cfg: TrainConfig) -> None:
        setup_mindspore()
        self.cfg = cfg
        self.data = load_dataset(cfg.dataset)
        self.task = self.data.task
        n_out = self.data.num_classes if self.task == "classification" else 1
        self.model = build_model(cfg, self.data.input_shape, n_out)
        o = cfg.optimizer
        self.optimizer = create_optimizer(o.name, self.model.trainable_params(), o.weight_decay, o.momentum)
        self.sampler = ResumableSampler(len(self.data.x_train), cfg.batch_size, cfg.seed)
        self.total_steps = cfg.total_steps(len(self.data.x_train))
        self.step = 0
        self.samples_seen = 0
        self.sampler_epoch_of_step = 0
        self.compiled = bool(cfg.compile and getattr(self.model, "graph_safe", False))
        self._compiled_sizes: set[int] = set()  # per-process batch sizes the compiled step has seen
        self.compiled_this_step = False  # the last compute_grads compiled the step for a new batch size
        if self.compiled:
            self._grad_fn = _compiled_grad_fn(
                _TrainLoss(self.model, self.task == "classification"), self.optimizer.params
            )
        else:
            self._grad_fn = ms.value_and_grad(self._forward, None, self.optimizer.params)

    # ------------------------------------------------------------------ step
    def _forward(self, x: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        out = self.model(x)
        if self.task == "classification":
            loss = ops.cross_entropy(out, y, reduction="sum")
        else:
            loss = ((out.reshape(-1) - y) ** 2).sum()
        return loss * scale

    def lr_at(self, step: int) -> float:
        o = self.cfg.optimizer
        if o.warmup_steps and step < o.warmup_steps:
            return o.lr * (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            t = (step - o.warmup_steps) / max(1, self.total_steps - o.warmup_steps)
            return o.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
        return o.lr

    def next_indices(self) -> np.ndarray:
        """Global sample indices of the next step (advances the sampler)."""
        self.sampler_epoch_of_step = self.sampler.epoch
        return self.sampler.next_batch()

    def compute_grads(self, global_idx: np.ndarray, world_size: int = 1, rank: int = 0) -> tuple[float, tuple]:
        """Loss contribution and gradients of this rank's shard, scaled by ``1/len(global_idx)``."""
        local = shard(global_idx, world_size, rank)
        set_noise_key(self.cfg.seed, self.step, local)
        if len(local) == 0:
            return 0.0, tuple(ops.zeros(p.shape, p.dtype) for p in self.optimizer.params)
        xb = self.data.x_train[local]
        if self.cfg.augment_shift and xb.ndim == 4:
            xb = random_shift(xb, local, self.cfg.seed, self.sampler_epoch_of_step, self.cfg.augment_shift)
        x = Tensor(xb)
        y = Tensor(self.data.y_train[local])
        scale = Tensor(np.float32(1.0 / len(global_idx)))
        self.model.set_train(True)
        if self.compiled:
            self.compiled_this_step = len(local) not in self._compiled_sizes
            self._compiled_sizes.add(len(local))
            loss, grads = self._grad_fn(x, y, scale, self.model.dropout_masks(self.cfg.seed, self.step, local))
        else:
            loss, grads = self._grad_fn(x, y, scale)
        return float(loss.asnumpy()), grads

    def precompile(self, shard_sizes: list[int]) -> None:
        """Compile the training step now for these per-process batch sizes not compiled yet (a compiled graph
        is specialised to its input shape: ~0.5-1 s per new size on this CPU), so that a worker's first real
        steps do not pay for it. Parameters, optimizer and sampler are left untouched; batch-norm running
        statistics (which a training-mode graph updates) are restored."""
        if not self.compiled:
            return
        stats = {p.name: p.value() for p in self.model.get_parameters() if not p.requires_grad}
        self.model.set_train(True)
        for n in sorted({int(n) for n in shard_sizes if int(n) > 0} - self._compiled_sizes):
            x = Tensor(np.zeros((n, *self.data.x_train.shape[1:]), self.data.x_train.dtype))
            y = Tensor(np.zeros((n, *self.data.y_train.shape[1:]), self.data.y_train.dtype))
            masks = self.model.dropout_masks(self.cfg.seed, 0, np.arange(n))
            self._grad_fn(x, y, Tensor(np.float32(1.0)), masks)[0].asnumpy()
            self._compiled_sizes.add(n)
        for p in self.model.get_parameters():
            if p.name in stats:
                ops.assign(p, stats[p.name])

    def apply_grads(self, grads: tuple, batch_size: int) -> None:
        self.optimizer.step(grads, self.lr_at(self.step))
        self.finish_step(batch_size)

    def finish_step(self, batch_size: int) -> None:
        """Count a step whose parameters the optimizer has written."""
        self.step += 1
        self.samples_seen += batch_size

    def train_step(self) -> float:
        """One single-process step; returns the mean loss of the global batch."""
        idx = self.next_indices()
        loss, grads = self.compute_grads(idx)
        self.apply_grads(grads, len(idx))
        return loss

    # ------------------------------------------------------------------ eval
    def predict(self, x: np.ndarray, batch: int | None = None) -> np.ndarray:
        self.model.set_train(False)
        bs = batch or self.cfg.eval_batch_size
        outs = [self.model(Tensor(x[i : i + bs])).asnumpy() for i in range(0, len(x), bs)]
        return np.concatenate(outs) if outs else np.empty((0,))

    def evaluate(self, split: str = "test") -> dict[str, float]:
        x, y = self.data.split(split)
        out = self.predict(x)
        if self.task == "classification":
            z = out - out.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return {
                "accuracy": float((out.argmax(axis=1) == y).mean()),
                "loss": float(-logp[np.arange(len(y)), y].mean()),
            }
        pred = out.reshape(-1)
        mse = float(((pred - y) ** 2).mean())
        return {"mse": mse, "r2": float(1.0 - mse / max(float(y.var()), 1e-12))}

    # ------------------------------------------------------------------ state
    def params_numpy(self) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy().copy() for p in self.model.get_parameters()}  # asnumpy() is a live view

    def params_sha256(self) -> str:
        return params_sha256(self.params_numpy())

    def state(self, extra: dict[str, Any] | None = None) -> TrainState:
        return TrainState(
            params=self.params_numpy(),
            opt_state=self.optimizer.state_dict(),
            step=self.step,
            sampler=self.sampler.state(),
            seed=self.cfg.seed,
            samples_seen=self.samples_seen,
            extra=dict(extra or {}),
        )

    def load_state(self, state: TrainState) -> None:
        """Restore exactly; shapes and names must match this model (checked)."""
        own = {p.name: p for p in self.model.get_parameters()}
        for kind, names, source in (
            ("parameter", set(own), state.params),
            ("optimizer state", self.optimizer.state_names(), state.opt_state),
        ):
            missing, extra = sorted(names - set(source)), sorted(set(source) - names)
            if missing or extra:
                raise ConfigError(
                    f"checkpoint {kind}s",
                    f"missing={missing[:5]} unexpected={extra[:5]}",
                    "a checkpoint of the same model and optimizer",
                    "resume with the run's own config",
                )
        for name, p in own.items():
            arr = state.params[name]
            if tuple(arr.shape) != tuple(p.shape):
                raise ConfigError(f"checkpoint parameter {name}", tuple(arr.shape), f"shape {tuple(p.shape)}")
            ops.assign(p, Tensor(arr, dtype=p.dtype))  # in place: a compiled step reads this storage
        self.optimizer.load_state_dict(state.opt_state)
        self.step, self.samples_seen = state.step, state.samples_seen
        self.sampler.load_state(state.sampler)
