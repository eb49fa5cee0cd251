"""How a worker's gradients become the group's step: the gradient-exchange strategies over the group's
collective, chosen per group formation by :func:`choose_exchange`.

* :class:`AllReduce` — sum the gradients (``shm``, ``tcp``: in pieces of ``--bucket-mb``, large gradients in
  their own memory, the others in one flat buffer, :func:`sum_buckets`; ``mccl``: one MindSpore ``AllReduce``),
  then the trainer's own update (the tcp default: groups that span nodes keep the full optimizer state);
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

import queue
import threading
from collections.abc import Iterator
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
    "sum_buckets",
]


def flatten(grads: tuple) -> tuple[np.ndarray, list[int]]:
    """The gradients (MindSpore tensors) copied into one new flat host buffer, and the offsets where each
    starts (plus the end): gradient ``i`` is ``flat[at[i]:at[i + 1]]``."""
    arrs = [g.asnumpy().reshape(-1) for g in grads]
    if len({a.dtype for a in arrs}) > 1:
        raise RuntimeError(f"gradients of mixed dtypes {sorted({str(a.dtype) for a in arrs})}")
    return np.concatenate(arrs), [0, *np.cumsum([a.size for a in arrs]).tolist()]


def _own_views(grads: tuple) -> list[np.ndarray] | None:
    """Flat writable views of the gradients' own host memory (CPU tensors: ``asnumpy()`` is a view), or None
    where they cannot be summed in place: another device (a host copy), mixed dtypes, read-only or
    overlapping memory (a tensor given twice)."""
    import mindspore as ms

    if ms.get_context("device_target") != "CPU":
        return None
    arrs = [g.asnumpy() for g in grads]
    if len({a.dtype for a in arrs}) > 1 or not all(a.flags.writeable and a.flags.c_contiguous for a in arrs):
        return None
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrs if a.nbytes)
    if any(end > start for (_, end), (start, _) in zip(spans, spans[1:])):
        return None
    return [a.reshape(-1) for a in arrs]


_IN_PLACE_PIECES = 4  # a gradient of at least this many pieces is summed in place: the copy saved outweighs
# the extra round trips of its own all-reduce (the default CNN's 1.6 MB dense gradient is not)


def sum_buckets(
    comm: Any, grads: tuple, bucket_bytes: int | None = None
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Sum ``grads`` (MindSpore tensors) over the group; yields each bucket's gradient indices and their sums
    (flat). A gradient of at least ``_IN_PLACE_PIECES`` of the backend's pieces (``--bucket-mb``) is a bucket
    of its own, summed in place in the tensor's own memory (no copy; the tensor then holds the sum); the
    others are packed into new buffers: all in one (``bucket_bytes`` None: after the large ones) or, in
    gradient order, consecutive ones up to about ``bucket_bytes`` each. Where in-place is not possible
    (:func:`_own_views`), every gradient is copied into one flat buffer (:func:`flatten`), summed whole or in
    parameter-aligned buckets of at least ``bucket_bytes``. Either way, each element is the rank-ordered sum
    of one all-reduce of the whole gradient (bitwise)."""
    views = _own_views(grads)
    limit = bucket_bytes or float("inf")
    if views is None:
        flat, at = flatten(grads)
        views = [flat[at[i] : at[i + 1]] for i in range(len(grads))]
        bucket: list[int] = []
        for i in range(len(grads)):
            bucket.append(i)
            if (at[i + 1] - at[bucket[0]]) * flat.itemsize >= limit or i + 1 == len(grads):
                comm.allreduce_(flat[at[bucket[0]] : at[i + 1]], "sum")
                yield bucket, [views[k] for k in bucket]
                bucket = []
        return
    small: list[int] = []

    def packed() -> tuple[list[int], list[np.ndarray]]:
        buf = np.concatenate([views[k] for k in small]) if len(small) > 1 else views[small[0]]
        comm.allreduce_(buf, "sum")
        at = [0, *np.cumsum([views[k].size for k in small]).tolist()]
        return list(small), [buf[at[j] : at[j + 1]] for j in range(len(small))]

    for i, v in enumerate(views):
        if v.nbytes >= _IN_PLACE_PIECES * comm.chunk_bytes:
            if small and bucket_bytes is not None:  # in gradient order
                yield packed()
                small = []
            comm.allreduce_(v, "sum")
            yield [i], [v]
            continue
        small.append(i)
        if sum(views[k].nbytes for k in small) >= limit:
            yield packed()
            small = []
    if small:
        yield packed()


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
        """Sum the gradients in their own tensors' memory where they are large (:func:`sum_buckets`), small
        ones in new buffers viewed by zero-copy tensors. Either memory is new every step, on purpose: the
        optimizer may keep a gradient array (SGD's first momentum buffer *is* the gradient), so it must not
        alias memory that the next step overwrites (e.g. the shm backend's staging inbox)."""
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
        out = list(grads)
        for idx, sums in sum_buckets(self.comm, grads):
            for i, summed in zip(idx, sums):  # a gradient summed in place is its own tensor already
                if summed.ctypes.data != grads[i].asnumpy().ctypes.data:
                    out[i] = Tensor.from_numpy(summed.reshape(grads[i].shape))
        self._grads = tuple(out)
        return 0.0


def exchange_and_compute(
    optimizer: Optimizer, comm: ShmCollective, grads: tuple, lr: float, max_norm: float | None = None
) -> list[np.ndarray]:
    """Sum ``grads`` over the group bucket by bucket (:func:`sum_buckets`: buckets of about one piece, in
    gradient order) on a helper thread, and compute each parameter's new value (optimizer state included)
    here as soon as its bucket is summed: the update overlaps the exchange and the wait for the slower rank.
    The parameters themselves are not written (the caller commits the returned values); on a collective
    failure the optimizer's state is rolled back and the error raised, so nothing of the step is applied (the
    gradients' own memory may hold partial sums then). The sums are those of one all-reduce of the whole
    gradient (the same rank-ordered sum per element). With ``max_norm`` (gradient clipping) the update needs
    the global norm, so it waits for the last bucket and clips (``train.clip``) before computing: no overlap
    then."""
    sums: list[np.ndarray] = [np.empty(0)] * len(grads)
    summed: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()  # each bucket's indices, then None
    failed: list[BaseException] = []

    def exchange() -> None:
        try:
            for idx, out in sum_buckets(comm, grads, comm.chunk_bytes):
                for i, arr in zip(idx, out):
                    sums[i] = arr.reshape(grads[i].shape)
                summed.put(idx)
        except BaseException as e:  # noqa: BLE001 - re-raised on the step's thread
            failed.append(e)
        finally:
            summed.put(None)

    helper = threading.Thread(target=exchange, name="oms-exchange", daemon=True)
    undo = optimizer.begin_step()
    news: list[np.ndarray] = []
    helper.start()
    try:
        while (idx := summed.get()) is not None:
            for i in idx if max_norm is None else []:
                news.append(optimizer.compute(i, sums[i], lr))
        if max_norm is not None and not failed:
            news = [optimizer.compute(i, g, lr) for i, g in enumerate(clip_arrays(sums, max_norm)[0])]
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
