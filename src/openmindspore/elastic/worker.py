"""The data-parallel ``Worker`` process of an elastic group (the engine turns the plain class into a remote
process; MCCL's scheduler process is :class:`~openmindspore.elastic.processes.Scheduler`). A worker is started *warm*
(MindSpore imported, dataset loaded, model built) and idles in the pool until it ``join``\\ s a group:
only then does it connect: with ``mccl`` it sets the MindSpore cluster variables and calls
``mindspore.communication.init()`` (a process whose MindSpore group broke cannot re-initialise, so each
MCCL group gets fresh processes); with ``shm`` it (re)builds a shared-memory group in the live process;
with ``tcp`` (a group spanning nodes) the same, shared memory among the ranks of its node and TCP to the
others, through the process's TCP endpoint (:meth:`Worker.endpoint`, opened once).

Each ``step`` shards the global batch, computes gradients, exchanges them over the group through the
:mod:`~openmindspore.elastic.comm` seam with the group's strategy (:mod:`~openmindspore.elastic.exchange`:
one all-reduce, overlapped with the update, or the sharded optimizer, the ``shm`` default), applies the
update and stashes the new state (:mod:`~openmindspore.elastic.stash`). ``snapshot`` and ``export_state``
return a stashed state as a ``TrainState`` from another thread of the process, off the critical path; the
engine serialises its arrays out of band (one copy into its object store). Calls and results are the
typed messages of :mod:`~openmindspore.elastic.messages`.

With a rebuildable backend (``shm``, ``tcp``) a worker survives the failure of a peer: the collective raises at
once, the step is rolled back (the sampler rewound; nothing was applied) and reported as a
:class:`~openmindspore.elastic.messages.CommFailure`, and ``connect`` later rebuilds the group in the
same process.

Owns the worker process's training state (its trainer), its membership (rank, world size, collective,
exchange strategy) and the fault injection armed in it; touches only its own process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from openmindspore.elastic.comm import CommAbortedError, CommError
from openmindspore.elastic.exchange import Exchange, SingleProcess, can_shard, choose_exchange
from openmindspore.elastic.messages import (
    ArmedFault,
    CommFailure,
    CommSpec,
    ConnectResult,
    ExportedState,
    Heartbeat,
    LoadResult,
    StepResult,
    SummaryFields,
)
from openmindspore.elastic.processes import pin_to_cores, set_threads
from openmindspore.elastic.stash import StateStash

if TYPE_CHECKING:
    from openmindspore.elastic.store.base import SnapshotRecord, SnapshotTarget
    from openmindspore.train.state import TrainState

__all__ = ["Worker", "pin_to_cores", "shard_sizes"]

_SIGNALS = {"kill": signal.SIGKILL, "hang": signal.SIGSTOP, "preempt": signal.SIGTERM}


def shard_sizes(batch: int, n_train: int, total_steps: int, world_sizes: set[int]) -> list[int]:
    """Every rank's shard size of a full batch in groups of ``world_sizes``, and of an epoch's last, partial
    batch when a run of ``total_steps`` reaches an epoch's end (a short run never does: not compiled)."""
    from openmindspore.data import shard

    rem = n_train % batch if total_steps * batch >= n_train else 0
    return [len(shard(np.arange(b), n, r)) for n in sorted(world_sizes) for b in (batch, rem) if b for r in range(n)]


class Worker:
    """One data-parallel training process (see module docstring)."""

    def __init__(
        self, cfg: dict[str, Any], threads: int = 1, world_size: int = 1, also_world_sizes: tuple[int, ...] = ()
    ) -> None:
        set_threads(threads)
        self.threads = threads
        self._all_cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        os.environ.setdefault("GLOG_v", "3")
        import mindspore as ms

        from openmindspore.train.config import config_from_dict
        from openmindspore.train.trainer import Trainer

        ms.set_context(runtime_num_threads=max(1, threads))
        self.trainer = Trainer(config_from_dict(cfg))
        self._warm_up(world_size)
        self.snapshot_copy_s = self._time_state_copy()
        if also_world_sizes:
            # compile now, off the critical path, the shard shapes of the smaller groups this worker may
            # shrink to (no replacement in time); ~0.7 s each on this CPU, paid by a step (a recovery's
            # first one) otherwise
            tr = self.trainer
            world_sizes = {world_size, *also_world_sizes}
            tr.precompile(shard_sizes(tr.cfg.batch_size, len(tr.data.x_train), tr.total_steps, world_sizes))
        self.rank, self.world_size = 0, 1
        self.faults: list[ArmedFault] = []
        self.fault_log = ""
        self.stash = StateStash(self.trainer)
        self._preempted = False
        self._sigterm = threading.Event()  # set by the SIGTERM handler
        self.comm: Any = None  # a Collective (openmindspore.elastic.comm) when world_size > 1
        self.exchange: Exchange = SingleProcess(self.trainer)  # the group's gradient exchange
        self._busy = threading.Lock()  # held by step(); connect() waits for it
        self._doomed: set[str] = set()  # shm groups the driver gave up before this worker joined them
        self._endpoint: Any = None  # this process's TCP endpoint (comm.Endpoint), opened by endpoint()
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _warm_up(self, world_size: int) -> None:
        """Run one full step on a shard of the expected size, then restore the initial state, so the first
        real step of a replacement process is not slowed by MindSpore building its kernels."""
        from mindspore import ops

        from openmindspore.train.state import TrainState

        tr = self.trainer
        initial = tr.state().to_bytes()
        idx = np.arange(min(tr.cfg.batch_size, len(tr.data.x_train)))
        _, grads = tr.compute_grads(idx, world_size, 0)
        flat = ops.cat([g.reshape(-1) for g in grads])
        tr.apply_grads(tuple(flat[:1].reshape(()) * 0 + g for g in grads), len(idx))
        tr.load_state(TrainState.from_bytes(initial))

    def _time_state_copy(self) -> float:
        """Seconds a snapshot of this process's training state (parameters and optimizer slots) costs it, at
        least: one copy, plus one SHA-256 over its bytes (the default store verifies every snapshot by it;
        for a large state the hash costs several times the copy); ``--snapshot-every auto`` budgets it
        until the driver has measured the real cost."""
        tr = self.trainer
        arrays = [*tr.params_numpy().values(), *(a for arrs in tr.optimizer.state.values() for a in arrs)]
        times = []
        for _ in range(3):  # the least of 3: other processes start beside this one
            t0 = time.perf_counter()
            copies = [np.array(a, copy=True) for a in arrays]
            times.append(time.perf_counter() - t0)
            del copies
        t0 = time.perf_counter()
        digest = hashlib.sha256()
        for a in arrays:
            digest.update(a.reshape(-1).view(np.uint8).data)
        return min(times) + time.perf_counter() - t0

    def _on_sigterm(self, *_: Any) -> None:
        self._preempted = True
        self._sigterm.set()

    # ------------------------------------------------------------- control
    def ready(self) -> int:
        return os.getpid()

    def ping(self) -> Heartbeat:
        return Heartbeat(os.getpid(), self.trainer.step)

    def endpoint(self, host: str) -> tuple[str, int]:
        """Open (once) this process's TCP endpoint on ``host`` (its node's IP) for groups that span nodes;
        returns its ``(host, port)``."""
        from openmindspore.elastic.comm import Endpoint

        if self._endpoint is None:
            self._endpoint = Endpoint(host)
        return self._endpoint.address()

    def connect(self, rank: int, world_size: int, spec: CommSpec, pin: bool = False) -> ConnectResult:
        """Join a group as ``rank`` of ``world_size`` as ``spec`` says. MCCL forms MindSpore communication
        once per process (standby groups connect ahead of time, so its ~3 s start-up sync is off the
        recovery path); shm (re)builds its group in this live process in ms."""
        t0 = time.perf_counter()
        if not self._busy.acquire(timeout=spec.timeout):
            raise RuntimeError(f"worker rank {self.rank} is still inside a step; abort() it first")
        try:
            self._unshard()  # before the old group's shared memory goes
            overlap = shard = False
            if spec.backend == "mccl":
                if world_size > 1:
                    rank = self._init_mccl(rank, world_size, spec)
            elif world_size > 1:
                if spec.group in self._doomed:
                    raise CommAbortedError(f"group {spec.group} was aborted before rank {rank} joined it")
                overlap = spec.overlap
                if spec.backend == "tcp":  # spans nodes: full optimizer state on every rank (a node may go)
                    self._rebuild_tcp(rank, world_size, spec)
                else:
                    shard = spec.shard and not overlap and can_shard(self.trainer.optimizer)
                    self._rebuild_shm(rank, world_size, spec, shard)
            elif self.comm is not None:
                self.comm.close()
                self.comm = None
            self.exchange = choose_exchange(
                self.trainer, self.comm, world_size, overlap=overlap, shard=shard, lock=self.stash.lock
            )
            self.rank, self.world_size = rank, world_size
            cores = pin_to_cores(rank, world_size, self.threads, self._all_cores) if pin else None
        finally:
            self._busy.release()
        return ConnectResult(rank, os.getpid(), time.perf_counter() - t0, socket.gethostname(), cores)

    def _rebuild_shm(self, rank: int, world_size: int, spec: CommSpec, shard: bool) -> None:
        from openmindspore.elastic.comm import ShmCollective

        if not isinstance(self.comm, ShmCollective):
            if self.comm is not None:
                self.comm.close()
            self.comm = ShmCollective(None, timeout=spec.timeout, chunk_bytes=spec.chunk_bytes)
        extra = 0
        if shard:
            from openmindspore.elastic.zero import ShardedOptimizer

            extra = ShardedOptimizer.extra_bytes(self.trainer.optimizer, self.comm.chunk_bytes, world_size, rank)
        self.comm.rebuild(spec.group, rank, world_size, extra_bytes=extra)

    def _rebuild_tcp(self, rank: int, world_size: int, spec: CommSpec) -> None:
        from openmindspore.elastic.comm import TcpCollective

        if self._endpoint is None:
            raise RuntimeError("a group spanning nodes needs this worker's TCP endpoint (Worker.endpoint) first")
        if not isinstance(self.comm, TcpCollective):
            if self.comm is not None:
                self.comm.close()
            self.comm = TcpCollective(timeout=spec.timeout, chunk_bytes=spec.chunk_bytes, endpoint=self._endpoint)
        self.comm.rebuild(spec.group, rank, world_size, spec.nodes, spec.addrs)

    def _init_mccl(self, rank: int, world_size: int, spec: CommSpec) -> int:
        """Join MindSpore's communication through the scheduler at ``spec.sched``; returns the rank it gives."""
        if spec.sched is None:
            raise RuntimeError("an MCCL group needs its scheduler's address")
        host, port = spec.sched
        os.environ.update(
            MS_ROLE="MS_WORKER",
            MS_SCHED_HOST=host,
            MS_SCHED_PORT=str(port),
            MS_WORKER_NUM=str(world_size),
            MS_NODE_ID=str(rank),
        )
        from mindspore.communication import init

        from openmindspore.elastic.comm import MCCLCollective

        init()
        self.comm = MCCLCollective()
        return int(self.comm.rank)

    def abort(self, group: str | None = None) -> bool:
        """From another thread: make a step blocked in the collective fail now (rebuildable backends);
        with ``group``, also a connect to that group, in progress or still to come."""
        if group is not None:
            self._doomed.add(group)
        if self.comm is not None and self.comm.can_rebuild:
            self.comm.abort(group)
            return True
        return False

    def load(self, state: TrainState | None, faults: list[ArmedFault], fault_log: str = "") -> LoadResult:
        """Load the group's starting state (None: keep this one's) and the faults still to inject."""
        t0 = time.perf_counter()
        if state is not None:
            self._unshard()
            self.trainer.load_state(state)
        self.faults, self.fault_log = list(faults), fault_log
        with self.stash.lock:
            self.stash.record(self.exchange.zero)
        return LoadResult(self.rank, self.trainer.step, time.perf_counter() - t0, self.snapshot_copy_s)

    def _unshard(self) -> None:
        """Leave sharded mode: the optimizer gets its full state back (of the latest stashed step, read from
        every rank's shard; run before the group's shared memory is unmapped)."""
        zero = self.exchange.detach_zero()
        if zero is not None:
            with self.stash.lock:
                self.trainer.optimizer.state = self.stash.unshard(zero)

    # ---------------------------------------------------------------- step
    def _inject(self, step: int) -> None:
        """Fire the injected faults due now; each is first recorded in the run's fault log (fsync), so the
        driver knows exactly which ones fired even when several processes die at once."""
        for f in self.faults:
            if f.step == step and f.rank == self.rank:
                with open(self.fault_log, "a") as log:
                    log.write(f"{f.index}\n")
                    log.flush()
                    os.fsync(log.fileno())
                os.kill(os.getpid(), _SIGNALS[f.kind])
                if f.kind == "preempt":
                    # Python runs the handler in the main thread, which Ray's actor loop lets in only now
                    # and then (up to ~1 s later); the injected preemption is meant to hit this step
                    self._sigterm.wait(timeout=10.0)

    def step(self, step: int) -> StepResult | CommFailure:
        """Run global step ``step`` (0-based index of the step being computed). If the collective fails
        (a peer died, hung or the driver aborted), nothing is applied, the sampler is rewound, and the
        result is a :class:`~openmindspore.elastic.messages.CommFailure`."""
        with self._busy:
            return self._step(step)

    def _step(self, step: int) -> StepResult | CommFailure:
        tr = self.trainer
        if tr.step != step:
            raise RuntimeError(f"worker rank {self.rank} is at step {tr.step}, asked for step {step}")
        self._inject(step + 1)  # faults are given as the 1-based step during which they happen
        epoch = tr.sampler.epoch
        sampler0, epoch_of_step0 = tr.sampler.state(), tr.sampler_epoch_of_step
        idx = tr.next_indices()
        t0 = time.perf_counter()
        loss, grads = tr.compute_grads(idx, self.world_size, self.rank)
        t_compute = time.perf_counter() - t0
        try:  # parameters written and optimizer advanced here only when sharded (update inside)
            t_inner_update = self.exchange.run(grads, tr.lr_at(tr.step))
        except CommError as e:
            self.exchange.rollback(self.stash)
            tr.sampler.load_state(sampler0)
            tr.sampler_epoch_of_step = epoch_of_step0
            return CommFailure(str(e), e.kind, e.ranks, self.rank, tr.step, time.time())
        t_comm = time.perf_counter() - t0 - t_compute - t_inner_update  # the update apart from the exchange
        with self.stash.lock:
            t1 = time.perf_counter()
            self.exchange.commit(len(idx))
            t2 = time.perf_counter()
            self.stash.record(self.exchange.zero)
            t_stash = time.perf_counter() - t2
        from openmindspore.data import shard

        return StepResult(
            step=tr.step,
            loss=loss,
            epoch=epoch,
            samples=shard(idx, self.world_size, self.rank),
            rank=self.rank,
            preempted=self._preempted,
            compute_s=t_compute,
            comm_s=t_comm,
            update_s=t2 - t1 + t_inner_update,
            stash_s=t_stash,
            worker_s=time.perf_counter() - t0,
            compiled=tr.compiled_this_step,
            time=time.time(),
        )

    def snapshot(self, step: int, timeout: float = 60.0) -> TrainState:
        """The ``TrainState`` after global step ``step`` (waits until the step is stashed)."""
        return self.stash.train_state(self.stash.wait_for(step, timeout))

    def snapshot_to(self, step: int, target: SnapshotTarget, timeout: float = 60.0) -> SnapshotRecord:
        """Write the state after ``step`` into a snapshot store outside the driver (``target``: e.g. the
        holder's shared memory), from this thread; only (step, SHA-256, size) goes back to the driver."""
        return target.write(step, self.snapshot(step, timeout))

    def export_state(self) -> ExportedState:
        """The latest completed state (used from survivors during recovery, while the main thread may be
        blocked in a collective)."""
        with self.stash.lock:
            stash = self.stash.latest()
        return ExportedState(stash.step, self.stash.train_state(stash))

    def summary_fields(self) -> SummaryFields:
        tr = self.trainer
        return SummaryFields(
            eval=tr.evaluate("test"),
            val=tr.evaluate("val"),
            params_sha256=tr.params_sha256(),
            epoch=tr.sampler.epoch,
            steps=tr.step,
            samples_seen=tr.samples_seen,
        )
