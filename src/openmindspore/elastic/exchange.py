"""How a worker's gradients become the group's step: the gradient-exchange strategies over the group's
collective, chosen per group formation by :func:`choose_exchange`.

* :class:`AllReduce` — sum the gradients with one all-reduce of a flat buffer (``shm``: in pieces of
  ``--bucket-mb``; ``mccl``: MindSpore's ``AllReduce``), then the trainer's own update;
* :class:`Overlapped` — (``--overlap``) compute each parameter's update as soon as its bucket is summed;
* :class:`Sharded` — (shm default, ZeRO-1) each rank updates only the part it summed and the group gathers
  the new parameters (:mod:`~openmindspore.elastic.zero`);
* :class:`SingleProcess` — a group of one: the trainer's own update.

Gradient clipping (``optimizer.clip_grad_norm``) applies to the summed gradient in every strategy: in the
trainer's update (single process, all-reduce), after the last bucket (overlapped: no overlap then), or
from the per-shard squared norms (sharded, :meth:`ShardedOptimizer.step`).

A step runs in two halves: :meth:`Exchange.run` (the collective; raises ``CommError`` with nothing of
the step applied, after :meth:`Exchange.rollback` for :class:`Sharded`, which writes parameters in place)
and :meth:`Exchange.commit` (applies it, under the worker's stash lock). Each strategy owns only what
passes between the halves, and :class:`Sharded` its group's ZeRO-1 state. They touch the trainer's
parameters and optimizer and the collective they are given; they never change the worker's stash (a
rollback reads it) or sampler.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from openmindspore.train.clip import clip_arrays

if TYPE_CHECKING:
    from openmindspore.elastic.comm import ShmCollective
    from openmindspore.elastic.stash import StateStash
    from openmindspore.elastic.zero import ShardedOptimizer
    from openmindspore.train.optim import Optimizer
    from openmindspore.train.trainer import Trainer

__all__ = [
    "AllReduce",
    "Exchange",
    "Overlapped",
    "Sharded",
    "SingleProcess",
    "can_shard",
    "choose_exchange",
    "exchange_and_compute",
    "flatten",
]


def flatten(grads: tuple) -> tuple[np.ndarray, list[int]]:
    """The gradients (MindSpore tensors) copied into one new flat host buffer, and the offsets where each
    starts (plus the end): gradient ``i`` is ``flat[at[i]:at[i + 1]]``."""
    arrs = [g.asnumpy().reshape(-1) for g in grads]
    if len({a.dtype for a in arrs}) > 1:
        raise RuntimeError(f"gradients of mixed dtypes {sorted({str(a.dtype) for a in arrs})}")
    return np.concatenate(arrs), [0, *np.cumsum([a.size for a in arrs]).tolist()]


def can_shard(optimizer: Optimizer) -> bool:
    """The sharded optimizer needs an element-wise optimizer over float32 parameters."""
    return hasattr(optimizer, "update_piece") and all(p.asnumpy().dtype == np.float32 for p in optimizer.params)


class Exchange:
    """A strategy (see the module docstring); this base keeps the gradients for the trainer's update."""

    zero: ShardedOptimizer | None = None  # the group's ZeRO-1 state (Sharded, once started)

    def __init__(self, trainer: Trainer, comm: Any = None) -> None:
        self.trainer, self.comm = trainer, comm
        self._grads: tuple = ()

    def run(self, grads: tuple, lr: float) -> float:
        """Exchange this rank's ``grads`` (MindSpore tensors) for the group's step at learning rate ``lr``;
        returns the seconds spent updating inside the exchange (0 unless sharded)."""
        self._grads = grads
        return 0.0

    def commit(self, batch: int) -> None:
        """Apply the step of ``batch`` global samples (the worker holds its stash lock)."""
        grads, self._grads = self._grads, ()
        self.trainer.apply_grads(grads, batch)

    def rollback(self, stash: StateStash) -> None:
        """After a failed :meth:`run`: undo what it wrote (from the last completed state in ``stash``)."""

    def detach_zero(self) -> ShardedOptimizer | None:
        """Leave sharded mode: the ZeRO-1 state, if one was started (the caller reads the full optimizer
        state back from it); the next sharded step starts afresh."""
        return None


class SingleProcess(Exchange):
    """A group of one: nothing to exchange."""


class AllReduce(Exchange):
    """Sum the gradients over the group with one all-reduce, then the trainer's own update."""

    def run(self, grads: tuple, lr: float) -> float:
        """Flatten into one new buffer, all-reduce it in place, and keep zero-copy tensors viewing it. The
        buffer is new every step on purpose: the optimizer may keep a gradient array (SGD's first momentum
        buffer *is* the gradient), so it must not alias memory that the next step overwrites (e.g. the shm
        backend's staging inbox)."""
        from mindspore import Tensor

        if hasattr(self.comm, "allreduce_tensor"):  # MCCL: stay in MindSpore (no host round trip)
            from mindspore import ops

            flat_t = self.comm.allreduce_tensor(ops.cat([g.reshape(-1) for g in grads]))
            out, offset = [], 0
            for g in grads:
                n = int(np.prod(g.shape))
                out.append(flat_t[offset : offset + n].reshape(g.shape))
                offset += n
            self._grads = tuple(out)
            return 0.0
        flat, at = flatten(grads)
        self.comm.allreduce_(flat, "sum")
        self._grads = tuple(Tensor.from_numpy(flat[at[i] : at[i + 1]].reshape(g.shape)) for i, g in enumerate(grads))
        return 0.0


def exchange_and_compute(
    optimizer: Optimizer, comm: ShmCollective, grads: tuple, lr: float, max_norm: float | None = None
) -> list[np.ndarray]:
    """Sum ``grads`` over the group bucket by bucket (parameter-aligned, each at least the backend's piece
    size ``--bucket-mb`` unless it is the last) on a helper thread, and compute each parameter's new value
    (optimizer state included) here as soon as its bucket is summed: the update overlaps the exchange and
    the wait for the slower rank. The parameters themselves are not written (the caller commits the
    returned values); on a collective failure the optimizer's state is rolled back and the error raised, so
    nothing of the step is applied. The sums are those of one all-reduce of the whole buffer (the same
    rank-ordered sum per element). With ``max_norm`` (gradient clipping) the update needs the global norm,
    so it waits for the last bucket and clips (``train.clip``) before computing: no overlap then."""
    flat, at = flatten(grads)
    buckets: list[list[int]] = [[]]
    start = 0
    for i in range(len(grads)):
        buckets[-1].append(i)
        if (at[i + 1] - start) * flat.itemsize >= comm.chunk_bytes and i + 1 < len(grads):
            buckets.append([])
            start = at[i + 1]
    summed = [threading.Event() for _ in buckets]
    failed: list[BaseException] = []

    def exchange() -> None:
        try:
            for k, b in enumerate(buckets):
                comm.allreduce_(flat[at[b[0]] : at[b[-1] + 1]], "sum")
                summed[k].set()
        except BaseException as e:  # noqa: BLE001 - re-raised on the step's thread
            failed.append(e)
            for ev in summed:
                ev.set()

    helper = threading.Thread(target=exchange, name="oms-exchange", daemon=True)
    undo = optimizer.begin_step()
    news: list[np.ndarray] = []
    helper.start()
    try:
        if max_norm is not None:
            for ev in summed:
                ev.wait()
            if not failed:
                views = [flat[at[i] : at[i + 1]].reshape(g.shape) for i, g in enumerate(grads)]
                news = [optimizer.compute(i, g, lr) for i, g in enumerate(clip_arrays(views, max_norm)[0])]
        for k, b in enumerate(buckets if max_norm is None else []):
            summed[k].wait()
            if failed:
                break
            for i in b:
                news.append(optimizer.compute(i, flat[at[i] : at[i + 1]].reshape(grads[i].shape), lr))
    finally:
        helper.join()
        if failed or len(news) < len(grads):
            optimizer.rollback(undo)
    if failed:
        raise failed[0]
    return news


class Overlapped(Exchange):
    """Update each parameter while later gradient buckets are still being summed
    (:func:`exchange_and_compute`); commit writes the new values."""

    def __init__(self, trainer: Trainer, comm: Any) -> None:
        super().__init__(trainer, comm)
        self._news: list[np.ndarray] = []

    def run(self, grads: tuple, lr: float) -> float:
        clip = self.trainer.cfg.optimizer.clip_grad_norm
        self._news = exchange_and_compute(self.trainer.optimizer, self.comm, grads, lr, clip)
        return 0.0

    def commit(self, batch: int) -> None:
        news, self._news = self._news, []
        for i, new in enumerate(news):
            self.trainer.optimizer.commit(i, new)
        self.trainer.finish_step(batch)


class Sharded(Exchange):
    """Sum the gradients and update the parameters with the optimizer state sharded over the group
    (ZeRO-1, :mod:`~openmindspore.elastic.zero`), started from the full state at the group's first step.
    ``lock``: the worker's stash lock, held while the optimizer hands its state over to the shards."""

    def __init__(self, trainer: Trainer, comm: Any, lock: threading.Lock) -> None:
        super().__init__(trainer, comm)
        self.lock = lock

    def run(self, grads: tuple, lr: float) -> float:
        tr = self.trainer
        opt = tr.optimizer
        if self.zero is None:
            from openmindspore.elastic.zero import ShardedOptimizer

            zero = ShardedOptimizer(opt, self.comm)
            zero.start(tr.step, opt.state)
            with self.lock:  # the shard is the state now: no stale full copy to misuse
                self.zero, opt.state = zero, _NO_STATE
        params = [p.asnumpy().reshape(-1) for p in opt.params]  # live views: the new values go there
        clip = tr.cfg.optimizer.clip_grad_norm
        self.zero.step(tr.step, [g.asnumpy().reshape(-1) for g in grads], params, lr, clip)
        return self.zero.update_s

    def commit(self, batch: int) -> None:
        self.trainer.finish_step(batch)  # parameters written and optimizer advanced inside run()

    def rollback(self, stash: StateStash) -> None:
        """Write back the parameters of the last completed step (run() writes them in place)."""
        params = stash.latest().params
        for p in self.trainer.optimizer.params:
            np.copyto(p.asnumpy(), params[p.name].reshape(p.shape))

    def detach_zero(self) -> ShardedOptimizer | None:
        zero, self.zero = self.zero, None
        return zero


# the optimizer's full state while sharded: none (Optimizer.begin_step/rollback accept None there)
_NO_STATE: Any = None


def choose_exchange(
    trainer: Trainer, comm: Any, world_size: int, *, overlap: bool, shard: bool, lock: threading.Lock
) -> Exchange:
    """The strategy of a group of ``world_size`` over ``comm``: ``shard`` (decided by the worker with
    :func:`can_shard`; never together with ``overlap``) or ``overlap`` (both shm only), else one all-reduce."""
    if world_size == 1:
        return SingleProcess(trainer)
    if shard:
        return Sharded(trainer, comm, lock)
    if overlap:
        return Overlapped(trainer, comm)
    return AllReduce(trainer, comm)
