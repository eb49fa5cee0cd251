"""Single-process training step on MindSpore, split so data-parallel layers can reuse it.

The trainer is the same for every task: the task (``train/tasks``) supplies the loss, the collation of
training rows into tensors and the metrics; the model comes from the config (a registered name or the
user's ``class_path``) or from Python (``Trainer(cfg, model=cell_or_factory)``), see ``train/building``.

Models that declare ``graph_safe`` (the spec-driven CNN and the MLP, YOLOS without dropout; a user cell may
set ``graph_safe = True``) get their forward+backward compiled into one MindSpore graph (``ms.jit``): on CPU
that runs the default CNN's step ~5x faster than PyNative, which syncs with Python between ops. Dropout
masks are drawn on the host from the ``(seed, step, layer, sample)`` key and fed to the graph, so compiled
and PyNative steps give the same result. Other models (a user cell by default, ViT) run op by op.

``compute_grads`` evaluates a worker's shard of a global batch and returns gradients already scaled by
the task's ``loss_scale`` of the global batch (``1 / global_batch`` by default): summing them over workers
gives the exact global-mean gradient, whatever the world size. ``apply_grads`` sets the learning rate for
the step and runs the optimizer.

With ``train_subset`` the trainer's ``data.x_train`` is the subset (the sampler walks its rows) and
``data.sample_ids`` maps rows back to their original train-split ids, which key dropout and augmentation.

Augmentation (``cfg.augment_ops()``) runs on the host on each shard before the step
(``data.augment.Augmenter``). Key-feature ops read the saliency maps of ``train.saliency.SaliencyTracker``
(refreshed before the step, from the same parameters on every rank; part of ``TrainState``); mixing ops
make soft labels, which take a second compiled step with a soft cross-entropy: the int-label step of a
run without them is unchanged.
"""

from __future__ import annotations

import math
import os
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.data import Dataset, ResumableSampler, load_dataset, shard
from openmindspore.data.augment import Augmented, Augmenter, AugmentSource
from openmindspore.errors import ConfigError
from openmindspore.models import set_noise_key
from openmindspore.train.building import build_model, check_model
from openmindspore.train.clip import clip_arrays
from openmindspore.train.config import TrainConfig
from openmindspore.train.matched import MatchedStep
from openmindspore.train.optim import create_optimizer
from openmindspore.train.saliency import MapsModel, SaliencyTracker, with_input_grad
from openmindspore.train.state import TrainState, params_sha256
from openmindspore.train.tasks import Batch, get_task

__all__ = ["Trainer", "setup_mindspore", "train_data"]

_CONTEXT_SET = False


def setup_mindspore() -> None:
    """PyNative context; the training step of graph-safe models is compiled with ``ms.jit``."""
    global _CONTEXT_SET
    if not _CONTEXT_SET:
        os.environ.setdefault("GLOG_v", "3")
        ms.set_context(mode=ms.PYNATIVE_MODE, device_target=os.environ.get("OMS_DEVICE", "CPU"))
        _CONTEXT_SET = True


def train_data(cfg: TrainConfig) -> Dataset:
    """The dataset as the run trains on it: its training split cut to ``cfg.train_subset`` when set."""
    data = load_dataset(cfg.dataset)
    return data if cfg.train_subset is None else data.subset(cfg.train_subset, cfg.seed)


class _MaskedTrainLoss(nn.Cell):
    """``sum(loss(model.train_forward(x, masks), y) * scale)``: built-in models with host-drawn dropout masks."""

    def __init__(self, model: nn.Cell, loss: nn.Cell) -> None:
        super().__init__(auto_prefix=False)  # keep the model's parameter names (checkpoints use them)
        self.model, self.loss = model, loss

    def construct(self, x: Tensor, y: Tensor, scale: Tensor, masks: tuple, *more: Tensor) -> Tensor:
        return (self.loss(self.model.train_forward(x, masks), y, *more) * scale).sum()


class _PlainTrainLoss(nn.Cell):
    """``sum(loss(model(x), y, *more) * scale)``: a graph-safe cell (its own randomness, if any); ``more``:
    further targets of a task that has several (detection)."""

    def __init__(self, model: nn.Cell, loss: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.model, self.loss = model, loss

    def construct(self, x: Tensor, y: Tensor, scale: Tensor, masks: tuple, *more: Tensor) -> Tensor:
        return (self.loss(self.model(x), y, *more) * scale).sum()


class SoftCrossEntropySum(nn.Cell):
    """``-sum(y * log_softmax(logits))`` for soft labels ``y [N, C]`` (rows summing to 1: mixing ops); on
    one-hot rows it is the integer-label cross-entropy."""

    def construct(self, logits: Tensor, y: Tensor) -> Tensor:
        return -(y * ops.log_softmax(logits, axis=1)).sum()


def _compiled_grad_fn(loss: nn.Cell, params: list, input_grad: bool = False) -> Any:
    """The compiled step; ``input_grad``: its gradients are ``(d loss / d x, parameter gradients)``."""
    grad_fn = ms.value_and_grad(loss, 0 if input_grad else None, params)

    def step(x: Tensor, y: Tensor, scale: Tensor, masks: tuple, *more: Tensor) -> tuple:
        return grad_fn(x, y, scale, masks, *more)

    jitted = ms.jit(step)

    def call(x: Tensor, y: Tensor, scale: Tensor, masks: tuple, *more: Tensor) -> tuple:
        # a plain tuple argument is a compile-time constant (one recompilation per new mask value);
        # mutable() makes the masks graph inputs
        return jitted(x, y, scale, ms.mutable(masks) if masks else masks, *more)

    return call


class Trainer:
    """Model, optimizer, data and sampler of one run; holds the step counter."""

    def __init__(self, cfg: TrainConfig, model: Any = None) -> None:
        """``model``: an ``nn.Cell`` or a factory returning one, instead of ``cfg.model``."""
        setup_mindspore()
        self.cfg = cfg
        self.data = train_data(cfg)
        self.task = self.data.task  # the task's name ("classification", ...)
        self.task_impl = get_task(self.task)
        ops_list = cfg.augment_ops()
        x = self.data.x_train
        self.augmenter = (
            Augmenter(ops_list, self.data.input_shape, self.task, int(self.data.num_classes), (x.min(), x.max()))
            if ops_list
            else None
        )
        needs_maps = bool(self.augmenter and self.augmenter.needs_saliency)
        self.reuse_input_grad = needs_maps and cfg.saliency.source == "backward"
        self.model = build_model(
            with_input_grad(cfg) if self.reuse_input_grad else cfg, self.data, self.task_impl, model
        )
        check_model(self.model, self.data, self.task_impl, cfg.model)
        self.task_impl.bind(self.model, self.data)
        self.loss_cell = self.task_impl.loss_cell()
        o = cfg.optimizer
        self.optimizer = create_optimizer(
            o.name, self.model.trainable_params(), o.weight_decay, o.momentum, o.eps, o.bias_correction
        )
        self.sampler = ResumableSampler(len(self.data.x_train), cfg.batch_size, cfg.seed)
        self.total_steps = cfg.total_steps(len(self.data.x_train))
        self.step = 0
        self.samples_seen = 0
        self.sampler_epoch_of_step = 0
        self.compiled = bool(
            cfg.compile and getattr(self.model, "graph_safe", False) and self.task_impl.num_inputs == 1
        )
        self._compiled_sizes: set[int] = set()  # per-process batch sizes the compiled step has seen
        self.compiled_this_step = False  # the last compute_grads compiled the step for a new batch size
        self._masked = hasattr(self.model, "train_forward") and hasattr(self.model, "dropout_masks")
        params, position = self.optimizer.params, 0 if self.reuse_input_grad else None
        self.soft = bool(self.augmenter and self.augmenter.soft)
        # targets from the model's own outputs (detection): one forward per compiled step, not two
        self._matched = (
            MatchedStep(self.model, self.loss_cell, params, self.task_impl)
            if self.compiled and self.task_impl.matched_outputs and not (self._masked or self.reuse_input_grad)
            else None
        )
        if self.compiled:
            wrapper = _MaskedTrainLoss if self._masked else _PlainTrainLoss
            self._grad_fn = _compiled_grad_fn(wrapper(self.model, self.loss_cell), params, self.reuse_input_grad)
            if self.soft:
                soft = wrapper(self.model, SoftCrossEntropySum())
                self._soft_grad_fn = _compiled_grad_fn(soft, params, self.reuse_input_grad)
        else:
            self._grad_fn = ms.value_and_grad(self._forward, position, params)
            if self.soft:
                self._soft_loss = SoftCrossEntropySum()
                self._soft_grad_fn = ms.value_and_grad(self._forward_soft, position, params)
        self.maps_model = MapsModel(cfg, self.data, self.task_impl, self.model, model is not None)
        self.saliency = (
            SaliencyTracker(cfg.saliency, self.maps_model.synced, self.loss_cell, self.compiled) if needs_maps else None
        )

    # ------------------------------------------------------------------ step
    def _forward(self, *args: Tensor) -> Tensor:
        """``args`` = the batch's inputs, its targets, then the scale (PyNative path, any task)."""
        n = self.task_impl.num_inputs
        return (self.loss_cell(self.model(*args[:n]), *args[n:-1]) * args[-1]).sum()

    def _forward_soft(self, x: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        return self._soft_loss(self.model(x), y) * scale

    def saliency_model(self) -> nn.Cell:
        """A cell computing the model's function *and* its input gradient, with the current parameters."""
        return self.maps_model.synced()

    def _augment(self, xb: np.ndarray, yb: np.ndarray, local: np.ndarray, ids: np.ndarray) -> Augmented:
        assert self.augmenter is not None
        maps = self.saliency.maps if self.saliency is not None else None
        src = AugmentSource(self.data.x_train, self.data.y_train, maps)
        return self.augmenter(xb, yb, local, ids, self.cfg.seed, self.sampler_epoch_of_step, src)

    def _masks(self, step: int, ids: np.ndarray) -> tuple:
        return self.model.dropout_masks(self.cfg.seed, step, ids) if self._masked else ()

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

    def _scale(self, global_idx: np.ndarray) -> Tensor:
        return Tensor(np.asarray(self.task_impl.loss_scale(self.data.y_train[global_idx]), np.float32))

    def compute_grads(self, global_idx: np.ndarray, world_size: int = 1, rank: int = 0) -> tuple[float, tuple]:
        """Loss contribution and gradients of this rank's shard, scaled by the task's ``loss_scale`` of the
        global batch's targets (``1/len(global_idx)`` by default)."""
        local = shard(global_idx, world_size, rank)
        ids = self.data.sample_ids(local)  # original train-split ids: the keys of dropout and augmentation
        set_noise_key(self.cfg.seed, self.step, ids)
        if self.saliency is not None:  # on every rank, also one with an empty shard: the maps stay identical
            if self.reuse_input_grad and world_size > 1:
                raise ConfigError(
                    "saliency.source",
                    "backward",
                    "a single-process run (each worker would keep the maps of its own samples only)",
                    "use source: refresh with --workers",
                )
            self.saliency.before_step(self.sampler_epoch_of_step, self.step, self.data.x_train, self.data.y_train)
        if len(local) == 0:
            return 0.0, tuple(ops.zeros(p.shape, p.dtype) for p in self.optimizer.params)
        xb, yb = self.data.x_train[local], self.data.y_train[local]
        aug = self._augment(xb, yb, local, ids) if self.augmenter is not None else None
        grad_fn = self._grad_fn
        if aug is not None and aug.soft is not None:
            batch, grad_fn = Batch(self.task_impl.inputs(aug.x), (Tensor(aug.soft),)), self._soft_grad_fn
        else:
            xb = aug.x if aug is not None else xb
            batch = self.task_impl.collate(xb, yb)
            if self._matched is None:
                batch = self.task_impl.match(self.model, batch)
        scale = self._scale(global_idx)
        self.model.set_train(True)
        if self.compiled:
            self.compiled_this_step = len(local) not in self._compiled_sizes
            self._compiled_sizes.add(len(local))
            if self._matched is not None and grad_fn is self._grad_fn:  # targets from this forward's outputs
                loss, grads = self._matched(batch.inputs[0], batch, scale)
            else:
                (x,), (y, *more) = batch.inputs, batch.targets
                loss, grads = grad_fn(x, y, scale, self._masks(self.step, ids), *more)
        else:
            loss, grads = grad_fn(*batch.inputs, *batch.targets, scale)
        if self.reuse_input_grad:
            dx, grads = grads
            assert self.saliency is not None and aug is not None
            self.saliency.after_step(local, dx.asnumpy(), aug.offsets)
        return float(loss.asnumpy()), grads

    def precompile(self, shard_sizes: list[int]) -> None:
        """Compile the training step now for these per-process batch sizes not compiled yet (a compiled graph
        is specialised to its input shape: ~0.5-1 s per new size on this CPU), so that a worker's first real
        steps do not pay for it. Parameters, optimizer and sampler are left untouched; batch-norm running
        statistics (which a training-mode graph updates) are restored."""
        if not self.compiled:
            return
        stats = {p.name: p.value() for p in self.model.get_parameters() if not p.requires_grad}
        for n in sorted({int(n) for n in shard_sizes if int(n) > 0} - self._compiled_sizes):
            rows = np.arange(n) % len(self.data.x_train)  # real rows: a task's targets may need them (matching)
            masks = self._masks(0, np.arange(n))
            if self.soft:
                x = Tensor(np.zeros((n, *self.data.x_train.shape[1:]), self.data.x_train.dtype))
                y = Tensor(np.zeros((n, int(self.data.num_classes)), np.float32))
                self.model.set_train(True)
                self._soft_grad_fn(x, y, Tensor(np.float32(1.0)), masks)[0].asnumpy()
            elif self._matched is not None:
                batch = self.task_impl.collate(self.data.x_train[rows], self.data.y_train[rows])
                self._matched(batch.inputs[0], batch, self._scale(rows))[0].asnumpy()
            else:
                batch = self.task_impl.match(
                    self.model, self.task_impl.collate(self.data.x_train[rows], self.data.y_train[rows])
                )
                self.model.set_train(True)
                (x,), (y, *more) = batch.inputs, batch.targets
                self._grad_fn(x, y, self._scale(rows), masks, *more)[0].asnumpy()
            self._compiled_sizes.add(n)
        for p in self.model.get_parameters():
            if p.name in stats:
                ops.assign(p, stats[p.name])

    def apply_grads(self, grads: tuple, batch_size: int) -> None:
        """The optimizer's step on the global gradient ``grads`` (summed over workers), clipped first to
        ``optimizer.clip_grad_norm`` when set."""
        if self.cfg.optimizer.clip_grad_norm is not None:
            arrays, scale = clip_arrays([g.asnumpy() for g in grads], self.cfg.optimizer.clip_grad_norm)
            if scale is not None:
                grads = tuple(Tensor.from_numpy(a) for a in arrays)
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
        """The model's outputs (inference mode) for model inputs ``x``, in batches."""
        self.model.set_train(False)
        bs = batch or self.cfg.eval_batch_size
        outs = []
        for i in range(0, len(x), bs):
            outs.append(self.task_impl.output_array(self.model(*self.task_impl.inputs(x[i : i + bs]))))
        return np.concatenate(outs) if outs else np.empty((0,))

    def evaluate(
        self, split: str = "test", x: np.ndarray | None = None, y: np.ndarray | None = None
    ) -> dict[str, float]:
        """The task's metrics on a split of the run's data, or on given model inputs ``x`` and targets ``y``."""
        if x is None or y is None:
            x, y = self.data.split(split)
        return self.task_impl.metrics(self.predict(x), y)

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
            arrays=self.state_arrays(),
        )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """State arrays besides parameters and optimizer (the saliency cache); the arrays are not copied
        (a refresh replaces them rather than writing into them)."""
        return self.saliency.state_arrays() if self.saliency is not None else {}

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
        if self.saliency is not None:
            self.saliency.load_arrays(state.arrays)
