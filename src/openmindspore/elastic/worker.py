"""Processes of an elastic group: a data-parallel ``Worker`` and a MindSpore ``Scheduler``.

Both are plain classes; the engine turns them into remote processes. A worker is started *warm*
(MindSpore imported, dataset loaded, model built) and idles in the pool until it ``join``\\ s a group:
only then does it connect: with ``mccl`` it sets the MindSpore cluster variables and calls
``mindspore.communication.init()`` (a process whose MindSpore group broke cannot re-initialise, so each
MCCL group gets fresh processes); with ``shm`` it (re)builds a shared-memory group in the live process.

Each ``step`` shards the global batch, computes gradients, sums them over the group with one all-reduce of
a flat buffer through the :mod:`~openmindspore.elastic.comm` seam (``shm``: shared memory, in pieces of
``--bucket-mb``; ``mccl``: MindSpore's ``AllReduce``), applies the optimizer (``shm`` by default: each rank
updates only the part it summed and the group gathers the new parameters, :mod:`~openmindspore.elastic.zero`),
and stashes the new state
(references to the parameter and optimizer tensors, which the next update replaces rather than
overwrites: about a millisecond on the critical path). ``snapshot`` and ``export_state`` return that
stash as a ``TrainState`` from another thread of the process, off the critical path; the engine
serialises its arrays out of band (one copy into its object store).

With a rebuildable backend (``shm``) a worker survives the failure of a peer: the collective raises at
once, the step is rolled back (the sampler rewound; nothing was applied) and reported as a
``comm_error``, and ``connect`` later rebuilds the group in the same process.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

import numpy as np

from openmindspore.elastic.comm import CommAbortedError, CommError

__all__ = ["Worker", "Scheduler"]


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def pin_to_cores(rank: int, world_size: int, threads: int, cores: list[int]) -> list[int] | None:
    """Pin every thread of this process to the ``threads`` cores of ``rank`` among ``cores`` (the node's,
    as the process started with): rank r gets ``cores[r*threads : (r+1)*threads]`` when the whole group
    fits (``world_size * threads <= len(cores)``), else every thread may use all of ``cores`` again.
    Returns the cores pinned to, or None when not pinned.

    MindSpore keeps ~1.8 cores busy in a "1-thread" process (its actor thread and the waiting Python
    thread spin): two unpinned 1-thread workers on 2 cores slow each other 1.6x, pinned they run at
    their solo speed (measured, default CNN). New threads inherit the affinity."""
    fits = bool(cores) and world_size * threads <= len(cores)
    chosen = set(cores[rank * threads : (rank + 1) * threads]) if fits else set(cores)
    if not chosen:
        return None
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), chosen)
        except OSError:  # a thread that just exited
            pass
    return sorted(chosen) if fits else None


def _flatten(grads: tuple) -> tuple[np.ndarray, list[int]]:
    """The gradients (MindSpore tensors) copied into one new flat host buffer, and the offsets where each
    starts (plus the end): gradient ``i`` is ``flat[at[i]:at[i + 1]]``."""
    arrs = [g.asnumpy().reshape(-1) for g in grads]
    if len({a.dtype for a in arrs}) > 1:
        raise RuntimeError(f"gradients of mixed dtypes {sorted({str(a.dtype) for a in arrs})}")
    return np.concatenate(arrs), [0, *np.cumsum([a.size for a in arrs]).tolist()]


def _die_with_parent() -> None:
    """In a child process: get SIGKILL when the parent dies (Linux), so no orphan outlives its actor."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Scheduler:
    """MindSpore's cluster scheduler (``MS_ROLE=MS_SCHED``) for one group. Its ``init()`` blocks and holds
    the GIL, so it runs in a warm child process (``_sched_main``) that dies with this actor."""

    def __init__(self) -> None:
        import subprocess
        import sys

        env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openmindspore.elastic._sched_main"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )

    def ready(self) -> int:
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"scheduler process failed to start (exit code {self.proc.poll()})")
        return os.getpid()

    def start(self, world_size: int, host: str = "127.0.0.1") -> tuple[str, int]:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        self.proc.stdin.write(f"{host} {port} {world_size}\n")
        self.proc.stdin.flush()
        return host, port


class Worker:
    """One data-parallel training process (see module docstring)."""

    def __init__(
        self, cfg: dict[str, Any], threads: int = 1, world_size: int = 1, also_world_sizes: tuple[int, ...] = ()
    ) -> None:
        _set_threads(threads)
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
            # shrink to (no replacement in time) and of an epoch's last, partial batch; ~0.7 s each on this
            # CPU, paid by a step (a recovery's first one) otherwise
            from openmindspore.data import shard

            tr = self.trainer
            batch, rem = tr.cfg.batch_size, len(tr.data.x_train) % tr.cfg.batch_size
            tr.precompile(
                [
                    len(shard(np.arange(b), n, r))
                    for n in {world_size, *also_world_sizes}
                    for b in (batch, rem)
                    if b
                    for r in range(n)
                ]
            )
        self.rank, self.world_size = 0, 1
        self.faults: list[tuple[int, str, int, int]] = []
        self.fault_log = ""
        self._lock = threading.Lock()
        self._stashes: dict[int, dict[str, Any]] = {}  # step -> state after that step (last few)
        self._stash_ready = threading.Condition(self._lock)
        self._preempted = False
        self._sigterm = threading.Event()  # set by the SIGTERM handler
        self.comm: Any = None  # a Collective (openmindspore.elastic.comm) when world_size > 1
        self._busy = threading.Lock()  # held by step(); connect() waits for it
        self._overlap = False  # shm with --overlap: see _exchange_and_compute
        self._shard = False  # shm, sharded optimizer (the default): see _sharded_step
        self._zero: Any = None  # its ShardedOptimizer, once started in this group (the optimizer's state is None then)
        self._doomed: set[str] = set()  # shm groups the driver gave up before this worker joined them
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
        """Seconds to copy this process's training state once (parameters and optimizer slots): what a
        snapshot costs, at least, to put into the object store; ``--snapshot-every auto`` budgets it."""
        tr = self.trainer
        arrays = [*tr.params_numpy().values(), *(a for arrs in tr.optimizer.state.values() for a in arrs)]
        times = []
        for _ in range(3):  # the least of 3: other processes start beside this one
            t0 = time.perf_counter()
            copies = [np.array(a, copy=True) for a in arrays]
            times.append(time.perf_counter() - t0)
            del copies
        return min(times)

    def _on_sigterm(self, *_: Any) -> None:
        self._preempted = True
        self._sigterm.set()

    # ------------------------------------------------------------- control
    def ready(self) -> int:
        return os.getpid()

    def ping(self) -> tuple[int, int]:
        return os.getpid(), self.trainer.step

    def connect(
        self,
        rank: int,
        world_size: int,
        sched: tuple[str, int] | None,
        comm: dict[str, Any] | None = None,
        pin: bool = False,
    ) -> dict[str, Any]:
        """Join a group as ``rank`` of ``world_size``. ``comm`` = ``{"backend": "shm"|"mccl", "group": str,
        "timeout": s, "chunk_bytes": int}`` (default MCCL through the scheduler at ``sched``). MCCL forms
        MindSpore communication once per process (standby groups connect ahead of time, so its ~3 s
        start-up sync is off the recovery path); shm (re)builds its group in this live process in ms."""
        spec = dict(comm or {"backend": "mccl"})
        t0 = time.perf_counter()
        if not self._busy.acquire(timeout=float(spec.get("timeout", 30.0))):
            raise RuntimeError(f"worker rank {self.rank} is still inside a step; abort() it first")
        try:
            self._unshard()  # before the old group's shared memory goes
            self._shard = False
            if spec["backend"] == "mccl":
                if world_size > 1:
                    host, port = sched
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
                    rank = self.comm.rank
            elif world_size > 1:
                from openmindspore.elastic.comm import ShmCollective

                if spec["group"] in self._doomed:
                    raise CommAbortedError(f"group {spec['group']} was aborted before rank {rank} joined it")
                if self.comm is None or not self.comm.can_rebuild:
                    self.comm = ShmCollective(
                        None, timeout=float(spec["timeout"]), chunk_bytes=int(spec["chunk_bytes"])
                    )
                self._overlap = bool(spec.get("overlap"))
                self._shard = bool(spec.get("shard")) and not self._overlap and self._can_shard()
                extra = 0
                if self._shard:
                    from openmindspore.elastic.zero import ShardedOptimizer

                    extra = ShardedOptimizer.extra_bytes(
                        self.trainer.optimizer, self.comm.chunk_bytes, world_size, rank
                    )
                self.comm.rebuild(spec["group"], rank, world_size, extra_bytes=extra)
            elif self.comm is not None:
                self.comm.close()
                self.comm = None
            self.rank, self.world_size = rank, world_size
            cores = pin_to_cores(rank, world_size, self.threads, self._all_cores) if pin else None
        finally:
            self._busy.release()
        return {
            "rank": rank,
            "pid": os.getpid(),
            "comm_init_s": time.perf_counter() - t0,
            "host": socket.gethostname(),
            "cores": cores,
        }

    def abort(self, group: str | None = None) -> bool:
        """From another thread: make a step blocked in the collective fail now (rebuildable backends);
        with ``group``, also a connect to that group, in progress or still to come."""
        if group is not None:
            self._doomed.add(group)
        if self.comm is not None and self.comm.can_rebuild:
            self.comm.abort(group)
            return True
        return False

    def load(self, state: Any, faults: list[tuple[int, str, int, int]], fault_log: str = "") -> dict[str, Any]:
        """Load the group's starting state (a ``TrainState``, or None to keep this one's) and the faults still
        to inject."""
        t0 = time.perf_counter()
        if state is not None:
            self._unshard()
            self.trainer.load_state(state)
        self.faults, self.fault_log = list(faults), fault_log
        with self._lock:
            self._stash_state()
        return {
            "rank": self.rank,
            "step": self.trainer.step,
            "load_s": time.perf_counter() - t0,
            "snapshot_copy_s": self.snapshot_copy_s,
        }

    # ---------------------------------------------------------------- step
    def _inject(self, step: int) -> None:
        """Fire the injected faults due now; each is first recorded in the run's fault log (fsync), so the
        driver knows exactly which ones fired even when several processes die at once."""
        for index, kind, at, rank in self.faults:
            if at == step and rank == self.rank:
                with open(self.fault_log, "a") as f:
                    f.write(f"{index}\n")
                    f.flush()
                    os.fsync(f.fileno())
                sig = {"kill": signal.SIGKILL, "hang": signal.SIGSTOP, "preempt": signal.SIGTERM}[kind]
                os.kill(os.getpid(), sig)
                if kind == "preempt":
                    # Python runs the handler in the main thread, which Ray's actor loop lets in only now
                    # and then (up to ~1 s later); the injected preemption is meant to hit this step
                    self._sigterm.wait(timeout=10.0)

    def step(self, step: int) -> dict[str, Any]:
        """Run global step ``step`` (0-based index of the step being computed). If the collective fails
        (a peer died, hung or the driver aborted), nothing is applied, the sampler is rewound, and the
        result is ``{"comm_error": message, "comm_kind": kind, "lost": [ranks], ...}``."""
        with self._busy:
            return self._step(step)

    def _step(self, step: int) -> dict[str, Any]:
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
        news: list[np.ndarray] | None = None
        t_sharded_update = None
        if self.world_size > 1:
            try:
                if self._shard:  # exchange and update together: parameters written, optimizer advanced
                    t_sharded_update = self._sharded_step(grads)
                elif self._overlap:  # shm: parameters are updated while later buckets are summed
                    news = self._exchange_and_compute(grads, tr.lr_at(tr.step))
                else:
                    grads = self._exchange(grads)
            except CommError as e:
                if self._shard:
                    self._restore_params()
                tr.sampler.load_state(sampler0)
                tr.sampler_epoch_of_step = epoch_of_step0
                return {
                    "comm_error": str(e),
                    "comm_kind": e.kind,
                    "lost": e.ranks,
                    "rank": self.rank,
                    "step": tr.step,
                    "time": time.time(),
                }
        t_comm = time.perf_counter() - t0 - t_compute
        with self._lock:
            t_update = time.perf_counter()
            if t_sharded_update is not None:
                tr.finish_step(len(idx))
            elif news is None:
                tr.apply_grads(grads, len(idx))
            else:
                for i, new in enumerate(news):
                    tr.optimizer.commit(i, new)
                tr.finish_step(len(idx))
            t1 = time.perf_counter()
            t_update = t1 - t_update
            self._stash_state()
            t_stash = time.perf_counter() - t1
        if t_sharded_update is not None:  # report the update apart from the exchange it ran inside
            t_comm, t_update = t_comm - t_sharded_update, t_update + t_sharded_update
        from openmindspore.data import shard

        return {
            "step": tr.step,
            "loss": loss,
            "epoch": epoch,
            "samples": shard(idx, self.world_size, self.rank),
            "rank": self.rank,
            "preempted": self._preempted,
            "compute_s": t_compute,
            "comm_s": t_comm,
            "update_s": t_update,
            "stash_s": t_stash,
            "worker_s": time.perf_counter() - t0,
            "compiled": tr.compiled_this_step,
            "time": time.time(),
        }

    def _can_shard(self) -> bool:
        """The sharded optimizer needs an element-wise optimizer over float32 parameters."""
        opt = self.trainer.optimizer
        return hasattr(opt, "update_piece") and all(p.asnumpy().dtype == np.float32 for p in opt.params)

    def _sharded_step(self, grads: tuple) -> float:
        """Sum the gradients and update the parameters with the optimizer state sharded over the group
        (:mod:`openmindspore.elastic.zero`); started from the full state at the group's first step. Returns
        the seconds spent in the optimizer."""
        tr = self.trainer
        opt = tr.optimizer
        if self._zero is None:
            from openmindspore.elastic.zero import ShardedOptimizer

            zero = ShardedOptimizer(opt, self.comm)
            zero.start(tr.step, opt.state)
            with self._lock:
                self._zero, opt.state = zero, None  # the shard is the state now: no stale copy to misuse
        params = [p.asnumpy().reshape(-1) for p in opt.params]  # live views: the new values go there
        self._zero.step(tr.step, [g.asnumpy().reshape(-1) for g in grads], params, tr.lr_at(tr.step))
        return self._zero.update_s

    def _restore_params(self) -> None:
        """After a failed sharded step: write back the parameters of the last stashed (completed) step."""
        saved = self._stashes[max(self._stashes)]["params"]
        for p in self.trainer.optimizer.params:
            np.copyto(p.asnumpy(), saved[p.name].reshape(p.shape))

    def _unshard(self) -> None:
        """Leave sharded mode: the optimizer gets its full state back (of the latest stashed step, read from
        every rank's shard; run before the group's shared memory is unmapped). Older stashes that need the
        shards are dropped."""
        zero, self._zero = self._zero, None
        if zero is None:
            return
        with self._lock:
            latest = max(self._stashes)
            try:
                full = zero.read(latest)
            except BaseException:
                self._stashes.clear()  # no consistent state here any more: the driver must load one
                raise
            self.trainer.optimizer.state = full
            self._stashes = {latest: {**self._stashes[latest], "opt": full, "zero": None}}  # old mappings can go

    def _exchange_and_compute(self, grads: tuple, lr: float) -> list[np.ndarray]:
        """Sum the gradients over the group bucket by bucket (parameter-aligned, each at least the backend's piece size
        ``--bucket-mb`` unless it is the last) on a helper thread, and compute each parameter's new value (optimizer
        state included) here as soon as its bucket is summed: the update overlaps the exchange and the wait for the
        slower rank. The parameters themselves are not written (the caller commits ``news``); on a collective
        failure the optimizer's state is rolled back and the error raised, so nothing of the step is applied. The
        sums are those of one all-reduce of the whole buffer (the same rank-ordered sum per element)."""
        flat, at = _flatten(grads)
        buckets: list[list[int]] = [[]]
        start = 0
        for i in range(len(grads)):
            buckets[-1].append(i)
            if (at[i + 1] - start) * flat.itemsize >= self.comm.chunk_bytes and i + 1 < len(grads):
                buckets.append([])
                start = at[i + 1]
        summed = [threading.Event() for _ in buckets]
        failed: list[BaseException] = []

        def exchange() -> None:
            try:
                for k, b in enumerate(buckets):
                    self.comm.allreduce_(flat[at[b[0]] : at[b[-1] + 1]], "sum")
                    summed[k].set()
            except BaseException as e:  # noqa: BLE001 - re-raised on the step's thread
                failed.append(e)
                for ev in summed:
                    ev.set()

        helper = threading.Thread(target=exchange, name="oms-exchange", daemon=True)
        opt = self.trainer.optimizer
        undo = opt.begin_step()
        news: list[np.ndarray] = []
        helper.start()
        try:
            for k, b in enumerate(buckets):
                summed[k].wait()
                if failed:
                    break
                for i in b:
                    news.append(opt.compute(i, flat[at[i] : at[i + 1]].reshape(grads[i].shape), lr))
        finally:
            helper.join()
            if failed or len(news) < len(grads):
                opt.rollback(undo)
        if failed:
            raise failed[0]
        return news

    def _exchange(self, grads: tuple) -> tuple:
        """Sum gradients (MindSpore tensors) over the group: flatten into one new buffer, all-reduce it in
        place, and return zero-copy tensors viewing it. The buffer is new every step on purpose: the
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
            return tuple(out)
        flat, at = _flatten(grads)
        self.comm.allreduce_(flat, "sum")
        return tuple(Tensor.from_numpy(flat[at[i] : at[i + 1]].reshape(g.shape)) for i, g in enumerate(grads))

    def _stash_state(self) -> None:
        """Keep the state of the step just completed (caller holds the lock)."""
        tr = self.trainer
        # host copies now: the optimizer writes the next step's values into the same storage, and reading
        # a device value later would wait for the stream, which a survivor's next MCCL all-reduce blocks
        # for ~30 s once a peer is dead
        self._stashes[tr.step] = {
            "params": tr.params_numpy(),
            # new arrays every step; sharded: read from the shards on demand (the ring keeps recent steps)
            "opt": None if self._zero is not None else {slot: list(arrs) for slot, arrs in tr.optimizer.state.items()},
            "zero": self._zero,
            "t": tr.optimizer.t,
            "step": tr.step,
            "sampler": tr.sampler.state(),
            "samples_seen": tr.samples_seen,
        }
        for old in sorted(self._stashes)[:-3]:
            del self._stashes[old]
        self._stash_ready.notify_all()

    def _as_train_state(self, stash: dict[str, Any]) -> Any:
        """The stash as a ``TrainState`` (its arrays are not copied: the engine serialises them out of band,
        one copy into its object store; ``to_bytes()`` costs ~10x more for a 10M-parameter model)."""
        from openmindspore.train.state import TrainState

        opt = self.trainer.optimizer
        slots = stash["opt"] if stash["opt"] is not None else stash["zero"].read(stash["step"])
        opt_state = {f"{slot}.{p.name}": a for slot, arrs in slots.items() for p, a in zip(opt.params, arrs)}
        opt_state["t"] = np.asarray([stash["t"]], dtype=np.int64)
        return TrainState(
            params=stash["params"],
            opt_state=opt_state,
            step=stash["step"],
            sampler=stash["sampler"],
            seed=self.trainer.cfg.seed,
            samples_seen=stash["samples_seen"],
        )

    def snapshot(self, step: int, timeout: float = 60.0) -> Any:
        """The ``TrainState`` after global step ``step`` (waits until the step is stashed)."""
        with self._lock:
            if not self._stash_ready.wait_for(lambda: max(self._stashes, default=-1) >= step, timeout):
                raise TimeoutError(f"step {step} not reached within {timeout} s")
            stash = self._stashes.get(step)
        if stash is None:
            raise RuntimeError(f"the state of step {step} is no longer held (now at {max(self._stashes)})")
        return self._as_train_state(stash)

    def export_state(self) -> tuple[int, Any]:
        """The latest completed state (used from survivors during recovery, while the main thread may be
        blocked in a collective)."""
        with self._lock:
            stash = self._stashes[max(self._stashes)]
        return stash["step"], self._as_train_state(stash)

    def summary_fields(self) -> dict[str, Any]:
        tr = self.trainer
        return {
            "eval": tr.evaluate("test"),
            "val": tr.evaluate("val"),
            "params_sha256": tr.params_sha256(),
            "epoch": tr.sampler.epoch,
            "steps": tr.step,
            "samples_seen": tr.samples_seen,
        }
