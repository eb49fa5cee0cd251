"""The elastic driver: forms worker groups on the engine, runs steps in lock-step, detects failures,
recovers from survivors' or snapshot state, rescales, and writes asynchronous disk checkpoints.

Failure semantics (see docs/distributed.md):

* **crash** — a worker process dies: the engine reports it at once. With ``--comm shm`` (rebuildable)
  the survivors' all-reduce fails within milliseconds, they roll the step back and stay alive; the group
  is rebuilt in their processes with warm replacements for the dead (TorchFT-style). With ``--comm mccl``
  survivors are blocked in the all-reduce; their state after the previous step is exported from another
  thread of their process, then the whole group is retired (a broken MindSpore group cannot be
  re-initialised).
* **hang** — a step outlives its deadline (``min(--hang-timeout, max(1 s, 5 x median step time))``);
  workers that do not answer a heartbeat within ``max(2 s, deadline / 2)`` are the hung ones (if all
  answer, the step is merely slow and gets another deadline, up to 3 x ``--hang-timeout``).
* **preempt** — SIGTERM: the worker finishes the step, reports it, and leaves; nothing is rolled back.

A new group is formed from warm pool processes: the same world size when enough are ready, otherwise
the survivors' count (``>= --min-workers``); when enough processes are ready again the group scales back
up at a step boundary.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmindspore.data import ResumableSampler
from openmindspore.elastic._steps import GroupFailure, StepMixin
from openmindspore.elastic.accounting import SampleLedger
from openmindspore.elastic.options import ElasticOptions, valid_world_sizes
from openmindspore.elastic.worker import Scheduler, Worker
from openmindspore.engine import ActorRef, Engine, get_engine
from openmindspore.errors import OMSError
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig
from openmindspore.train.progress import step_progress
from openmindspore.train.state import TrainState
from openmindspore.train.trainer import train_data

__all__ = ["ElasticTrainer", "GroupFailure"]

log = logging.getLogger(__name__)


@dataclass
class _Group:
    members: list[ActorRef]
    sched: ActorRef | None
    connect: list[Any]  # futures of Worker.connect
    started: float
    comm_group: str | None = None  # shm group name (None: mccl)


@dataclass
class _Member:
    actor: ActorRef
    ready: Any  # future of Worker.ready()


class ElasticTrainer(StepMixin):
    """Runs one elastic data-parallel job; ``run()`` returns the summary dict."""

    def __init__(
        self, cfg: TrainConfig, opts: ElasticOptions, run: RunDir, quiet: bool = True, engine: Engine | None = None
    ) -> None:
        self.cfg, self.opts, self.run_dir, self.quiet = cfg, opts.validate(cfg.batch_size), run, quiet
        self.cfg_dict = cfg.model_dump(mode="json")
        self.engine = engine or get_engine(opts.engine)
        self._pin = opts.pin and opts.address is None  # one node: each active worker on its own cores
        data = train_data(cfg)  # the training split as the workers see it (cut to train_subset)
        self.num_train = len(data.x_train)
        self.total_steps = cfg.total_steps(self.num_train)
        self.pool: list[_Member] = []
        self.sched_pool: list[_Member] = []
        self.group: list[ActorRef] = []
        self.group_sched: ActorRef | None = None
        self.standby: _Group | None = None
        self.free_bundles: list[int] = []
        self.restarts = 0
        self.recoveries: list[dict[str, Any]] = []
        self.rescales: list[dict[str, Any]] = []
        self.fired: set[int] = set()  # indices into opts.faults
        self.snapshot_copy_s = 0.0  # the slowest member's time to copy the state once (measured at start-up)
        self.snapshots: dict[int, Any] = {}  # step -> driver-owned engine object holding that step's TrainState
        self.step_times: list[float] = []
        self.stash_times: list[float] = []
        self.after_snapshot: list[bool] = []  # per step of step_times: a snapshot was requested just before it
        self._snapshot_requested = False
        self.comm_times: list[float] = []  # per step: the slowest rank's gradient exchange (incl. waiting), s
        self.phase_times: list[dict[str, float]] = []  # per step: compute / update / driver overhead, s
        self.worker_cores: list[list[int] | None] = []
        self.late_compiles = 0  # steps in which some worker compiled the step for a new shard size
        self.losses: list[float] = []
        self._ckpt_thread: threading.Thread | None = None
        self._last_ckpt_time = time.time()
        self._pending_recovery: dict[str, Any] | None = None
        self._bundle_nodes: list[tuple[str, float] | None] = []
        self._refill_pending = False
        self._initial_spawns_done = False
        self.fault_log = run.path / "faults_fired.log"
        self.rebuildable = self.opts.comm == "shm"  # survivors can rebuild their group in-process
        self._group_id = f"{os.getpid():x}{int(time.time() * 1000) % 0xFFFFFF:06x}"
        self._generation = 0
        self._inflight: dict[int, Any] = {}  # rank -> future of the step in progress

    # ------------------------------------------------------------ logging
    def _say(self, msg: str) -> None:
        log.info(msg)
        if not self.quiet:
            print(f"[elastic] {msg}", file=sys.stderr, flush=True)

    # -------------------------------------------------------------- pools
    def _spawn_worker(self) -> bool:
        if not self.free_bundles or not self.restarts_left():
            return False
        if self._initial_spawns_done:
            self.restarts += 1
        bundle = self.free_bundles.pop(0)
        # the first workers also compile the shapes of the smaller groups they may shrink to; a replacement
        # (started while a group waits for it) only warms up its own
        shrink_to = (
            ()
            if self._initial_spawns_done
            else tuple(
                n
                for n in valid_world_sizes(self.cfg.batch_size, self.opts.workers)
                if self.opts.min_workers <= n < self.opts.workers
            )
        )
        actor = self.engine.spawn(
            Worker,
            self.cfg_dict,
            self._threads_for(bundle),
            self.opts.workers,
            shrink_to,
            name=f"worker-b{bundle}",
            bundle=bundle,
            concurrency=4,
        )
        self.pool.append(_Member(actor, self.engine.call(actor, "ready")))
        return True

    def _threads_for(self, bundle: int) -> int:
        """CPU threads of the worker in ``bundle``: ``cores // workers`` on the embedded cluster; on a real
        cluster, that node's CPUs divided by the active workers the placement put on it."""
        if self.opts.address is None or bundle >= len(self._bundle_nodes) or self._bundle_nodes[bundle] is None:
            return int(self.opts.threads)
        node, cpus = self._bundle_nodes[bundle]
        on_node = sum(1 for x in self._bundle_nodes if x is not None and x[0] == node)
        return max(1, int(cpus // max(1, min(self.opts.workers, on_node))))

    def _spawn_scheduler(self) -> None:
        actor = self.engine.spawn(Scheduler, name="ms-scheduler", bundle=None, concurrency=2)
        self.sched_pool.append(_Member(actor, self.engine.call(actor, "ready")))

    def _refill(self, defer: bool = False) -> None:
        """Start replacement processes for free slots (cold start, in the background). ``defer``: only after
        the next completed step (a cold start takes CPU from a recovering group on a small node)."""
        if defer:
            self._refill_pending = True
            return
        self._refill_pending = False
        standby = len(self.standby.members) if self.standby else 0
        want = self.opts.workers + self.opts.spares - len(self.group) - len(self.pool) - standby
        while want > 0 and self._spawn_worker():
            want -= 1
        if not self.sched_pool:
            self._spawn_scheduler()

    def restarts_left(self) -> bool:
        return not self._initial_spawns_done or self.restarts < self.opts.max_restarts

    def _ready(self, pool: list[_Member], timeout: float = 0.0) -> list[_Member]:
        """Members whose process is up; dead ones are dropped and their slots freed."""
        futures = [m.ready for m in pool]
        if timeout:
            self.engine.wait(futures, timeout=timeout, num=len(futures))
        good = []
        for m in list(pool):
            out = self.engine.outcome(m.ready, timeout=0)
            if out.ok:
                m.actor.pid = out.value
                good.append(m)
            elif out.status != "pending":
                pool.remove(m)
                self._release(m.actor)
        return good

    def _release(self, actor: ActorRef) -> None:
        self.engine.kill(actor)
        if actor.bundle is not None and actor.bundle not in self.free_bundles:
            self.free_bundles.append(actor.bundle)

    # -------------------------------------------------------------- group
    def _take_ready(self, size: int, wait_s: float = 120.0) -> list[_Member]:
        deadline = time.time() + wait_s
        while True:
            ready = self._ready(self.pool)
            if len(ready) >= size:
                break
            if time.time() > deadline:
                raise OMSError(f"only {len(ready)} of {size} worker processes started within {wait_s:.0f} s")
            self._ready(self.pool, timeout=0.5)
        for m in ready[:size]:
            self.pool.remove(m)
        return ready[:size]

    def _connect(self, members: list[_Member]) -> _Group:
        """Start forming a communication group of ``members`` (non-blocking)."""
        size = len(members)
        sched, host_port = None, None
        if self.opts.comm == "shm":
            spec = self._comm_spec()
            futs = [
                self.engine.call(m.actor, "connect", rank, size, None, spec, self._pin)
                for rank, m in enumerate(members)
            ]
            return _Group([m.actor for m in members], None, futs, time.time(), spec["group"])
        if size > 1:
            if not self.sched_pool:
                self._spawn_scheduler()
            sm = self.sched_pool.pop(0)
            self._spawn_scheduler()  # keep one warm for the next group
            if not self.engine.get(sm.ready, timeout=120):
                raise OMSError("the MindSpore scheduler process did not start")
            sched = sm.actor
            host = "127.0.0.1" if self.opts.address is None else socket.gethostbyname(socket.gethostname())
            host_port = self.engine.get(self.engine.call(sched, "start", size, host), timeout=60)
        futs = [
            self.engine.call(m.actor, "connect", rank, size, host_port, None, self._pin)
            for rank, m in enumerate(members)
        ]
        return _Group([m.actor for m in members], sched, futs, time.time())

    def _comm_spec(self) -> dict[str, Any]:
        """Connection spec of a new shm group (a fresh group name per formation)."""
        self._generation += 1
        return {
            "backend": "shm",
            "group": f"{self._group_id}-{self._generation}",
            "timeout": 3 * self.opts.hang_timeout,
            "chunk_bytes": int(self.opts.bucket_mb * (1 << 20)),
            "overlap": self.opts.overlap,
            "shard": self.opts.shard_optimizer,
        }

    def _activate(
        self, g: _Group, state: TrainState | None, after_step: int, skip_load: frozenset[int] = frozenset()
    ) -> dict[str, Any]:
        """Wait for ``g`` to be connected, load ``state`` into it and make it the active group. Members
        whose index is in ``skip_load`` already hold ``state`` (survivors at that step) and keep theirs."""
        self._await_connect(g)
        outs = [self.engine.outcome(f, timeout=0) for f in g.connect]
        self.group, self.group_sched = g.members, g.sched
        bad = [i for i, o in enumerate(outs) if not o.ok]
        if bad:
            errs = "; ".join(f"[{i}] {outs[i].status}: {outs[i].error[-300:]}" for i in bad)
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"connect failed: {errs}")
        order = sorted(range(len(outs)), key=lambda i: outs[i].value["rank"])  # MindSpore's rank order
        self.group = [g.members[i] for i in order]
        self.worker_cores = [outs[i].value.get("cores") for i in order]
        keep = {id(g.members[i]) for i in skip_load}
        self._read_fault_log()
        faults = [(i, f.kind, f.step, f.rank) for i, f in enumerate(self.opts.faults) if i not in self.fired]
        loads = [
            self.engine.call(a, "load", None if id(a) in keep else state, faults, str(self.fault_log))
            for a in self.group
        ]
        self.engine.wait(loads, timeout=120, num=len(loads))
        louts = [self.engine.outcome(f, timeout=0) for f in loads]
        bad = [i for i, o in enumerate(louts) if not o.ok]
        if bad:
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"load failed: {louts[bad[0]].error}")
        self.snapshot_copy_s = max(o.value["snapshot_copy_s"] for o in louts)
        return {"comm_init_s": max(o.value["comm_init_s"] for o in outs)}

    def _await_connect(self, g: _Group, wait_s: float = 120.0) -> None:
        """Wait for every member's connect; if one fails (e.g. a replacement dies while the group forms),
        abort the others' rendezvous at once (shm) instead of letting them wait out the timeout."""
        pending, until = list(g.connect), time.time() + wait_s
        while pending and time.time() < until:
            _, pending = self.engine.wait(pending, timeout=min(0.5, max(0.0, until - time.time())), num=len(pending))
            waiting = {id(f) for f in pending}
            failed = any(
                self.engine.outcome(f, timeout=0).status in ("dead", "error") for f in g.connect if id(f) not in waiting
            )
            if failed and pending and g.comm_group is not None:
                for m, f in zip(g.members, g.connect):
                    if id(f) in waiting:
                        self.engine.call(m, "abort", g.comm_group)
                self.engine.wait(pending, timeout=10.0, num=len(pending))
                return

    def _form_group(
        self,
        size: int,
        state: TrainState | None,
        after_step: int,
        keep: list[ActorRef] | None = None,
        keep_at_state: frozenset[int] = frozenset(),
    ) -> dict[str, Any]:
        """Make a group of ``size`` active: the pre-connected standby group when it fits, else a new one.
        ``keep`` (rebuildable backends): live workers that stay and rebuild their group in-process, topped
        up from the warm pool; those whose index is in ``keep_at_state`` already hold ``state``."""
        if keep:
            members = [_Member(a, None) for a in keep[:size]] + self._take_ready(size - min(size, len(keep)))
            skip = frozenset(i for i in keep_at_state if i < size)
            try:
                info = self._activate(self._connect(members), state, after_step, skip_load=skip)
            finally:
                for a in keep[size:]:
                    self._release(a)
            info["standby"] = False
            info["kept"] = min(size, len(keep))
            self._refill(defer=True)
            return info
        sb, self.standby = self.standby, None
        if sb is not None and len(sb.members) == size:
            info = self._activate(sb, state, after_step)
            info["standby"] = True
        else:
            if sb is not None:
                self._retire(sb.members, sb.sched)
            info = self._activate(self._connect(self._take_ready(size)), state, after_step)
            info["standby"] = False
        info["kept"] = 0
        self._refill()
        return info

    def _prepare_standby(self) -> None:
        """Pre-connect a standby group of ``--workers`` processes when enough are warm."""
        if self.standby is not None or self.opts.spares < self.opts.workers or self.rebuildable:
            return  # shm groups form in milliseconds: no pre-connected standby group needed
        if len(self._ready(self.pool)) >= self.opts.workers:
            self.standby = self._connect(self._take_ready(self.opts.workers, wait_s=0))

    def _retire(self, actors: list[ActorRef], sched: ActorRef | None) -> None:
        for a in actors:
            self._release(a)
        if sched is not None:
            self.engine.kill(sched)

    def _retire_group(self) -> None:
        self._retire(self.group, self.group_sched)
        self.group, self.group_sched = [], None

    # ----------------------------------------------------------- recovery
    def _read_fault_log(self) -> None:
        """Injected faults that fired (each fires once; workers log them before the signal)."""
        if self.fault_log.is_file():
            self.fired |= {int(x) for x in self.fault_log.read_text().split()}

    def _recover(self, failure: GroupFailure, last_done: int, ledger: SampleLedger) -> int:
        """Replace the failed members (rebuildable backends keep the survivors alive and rebuild the group
        around them; otherwise the whole group is retired) and resume from the best state; returns its step."""
        if self._pending_recovery is not None:  # a failure during recovery: that one never completed
            rec = self._pending_recovery
            rec.pop("t_fail")
            rec.pop("t_formed")
            self.recoveries.append({**rec, "recover_s": None, "interrupted": True})
            self._pending_recovery = None
        world_before = len(self.group)
        alive = [r for r in range(world_before) if r not in failure.ranks]
        self._say(
            f"{failure.kind}: rank(s) {failure.ranks} during step {failure.step} "
            f"(detected after {failure.t_detect - failure.t_fail:.2f} s)"
        )
        keep_mode = self.rebuildable and self.opts.keep_survivors
        t_begin = time.time()
        if keep_mode:
            self._settle_survivors(alive)
        t_settled = time.time()
        state_step, best, also_dead, steps = self._best_state(alive, last_done)
        t_state = time.time()
        failure.ranks = sorted(set(failure.ranks) | set(also_dead))
        keep: list[ActorRef] = []
        keep_at: frozenset[int] = frozenset()
        if keep_mode:  # survivors stay (same processes); only the failed ones go
            survivors = [r for r in alive if r in steps and r not in failure.ranks]
            keep = [self.group[r] for r in survivors]
            keep_at = frozenset(i for i, r in enumerate(survivors) if steps[r] == state_step)
            for r in range(world_before):
                if r not in survivors:
                    self._release(self.group[r])
            self.group, self.group_sched = list(keep), None
        else:
            self._retire_group()
        steps_lost = ledger.rollback(state_step)
        if state_step > last_done:  # the failed step completed on the survivors: account for it
            self._record_reconstructed(ledger, best, state_step)
        deadline = time.time() + 120
        need = self.opts.workers - len(keep)
        covered = keep_mode and len(self._ready(self.pool)) >= need  # warm replacements are enough
        self._refill(defer=covered)
        if not self.standby:  # replacements are starting: wait a bounded time rather than shrink
            self._prepare_standby()
            if not self.standby and need > 0 and len(self.pool) >= need > len(self._ready(self.pool)):
                self._say(f"waiting up to {self.opts.rejoin_wait:.0f} s for replacement processes")
                until = time.time() + self.opts.rejoin_wait
                while time.time() < until and len(self._ready(self.pool, timeout=0.5)) < need:
                    pass
        while True:
            covered = covered and bool(keep) and len(self._ready(self.pool)) >= self.opts.workers - len(keep)
            self._refill(defer=covered)
            ready = (
                len(self._ready(self.pool, timeout=0.1))
                + (len(self.standby.members) if self.standby else 0)
                + len(keep)
            )
            if ready < self.opts.min_workers:
                if not self.pool or time.time() > deadline:
                    self._final_checkpoint(best)
                    raise OMSError(
                        f"{failure.kind} of rank(s) {failure.ranks} at step {failure.step} left {ready} worker "
                        f"process(es) and no restarts (--max-restarts={self.opts.max_restarts}), below "
                        f"--min-workers={self.opts.min_workers}; final checkpoint at step {state_step} in "
                        f"{self.run_dir.path}; resume with `oms train --resume {self.run_dir.path}`"
                    )
                self._ready(self.pool, timeout=1.0)  # wait for cold-started replacements
                continue
            try:
                info = self._form_group(
                    min(self.opts.workers, ready), best, state_step, keep=keep, keep_at_state=keep_at
                )
                size = len(self.group)
                t_formed = time.time()
                break
            except GroupFailure as again:  # a failure during recovery: retire and try again
                self._say(f"failure during recovery ({again.detail}); retrying")
                self._retire_group()
                keep, keep_at = [], frozenset()
        self._pending_recovery = {
            "step": failure.step,
            "kind": failure.kind,
            "failed_ranks": failure.ranks,
            "detect_s": round(failure.t_detect - failure.t_fail, 3),
            "t_fail": failure.t_fail,
            "world_before": world_before,
            "world_after": size,
            "steps_lost": steps_lost,
            "resumed_from_step": state_step,
            "comm_init_s": round(info["comm_init_s"], 3),
            "standby_group": info["standby"],
            "survivors_kept": info["kept"],
            "comm": self.opts.comm,
            "phases_s": {
                "detect_to_recover": round(t_begin - failure.t_detect, 3),
                "abort": round(t_settled - t_begin, 3),
                "state": round(t_state - t_settled, 3),
                "form_group": round(t_formed - t_state, 3),
            },
            "t_formed": t_formed,
        }
        self.snapshots = {s: r for s, r in self.snapshots.items() if s <= state_step}
        return state_step

    def _record_reconstructed(self, ledger: SampleLedger, state: TrainState, step: int) -> None:
        """Account for a step that completed on the survivors but whose results never reached the driver:
        its global batch is the one that ends at the state's sampler position."""
        s = state.sampler
        epoch, end = (s.epoch, s.offset) if s.offset else (s.epoch - 1, self.num_train)
        start = (end - 1) // self.cfg.batch_size * self.cfg.batch_size
        order = ResumableSampler(self.num_train, self.cfg.batch_size, s.seed).permutation(epoch)
        ledger.record(step, epoch, order[start:end])

    def _maybe_scale_up(self, step: int) -> None:
        if len(self.group) >= self.opts.workers:
            return
        self._prepare_standby()
        sb = self.standby
        if sb is not None:
            if len(self.engine.wait(sb.connect, timeout=0, num=len(sb.connect))[0]) < len(sb.connect):
                return  # scale up once the standby group is connected and waiting
        elif len(self._ready(self.pool)) < self.opts.workers - (len(self.group) if self._keeps() else 0):
            return  # ... or enough warm processes are up
        t0 = time.time()
        before = len(self.group)
        state_step, best, _, steps = self._best_state(list(range(before)), step)
        if self._keeps():  # the live group stays and grows in-process
            keep = list(self.group)
            info = self._form_group(
                self.opts.workers,
                best,
                state_step,
                keep=keep,
                keep_at_state=frozenset(r for r, s in steps.items() if s == state_step),
            )
        else:
            self._retire_group()
            info = self._form_group(self.opts.workers, best, state_step)
        self.rescales.append(
            {
                "step": step,
                "world_before": before,
                "world_after": self.opts.workers,
                "pause_s": round(time.time() - t0, 3),
                "comm_init_s": round(info["comm_init_s"], 3),
            }
        )
        self._say(
            f"scaled up {before} -> {self.opts.workers} workers at step {step} "
            f"({time.time() - t0:.2f} s pause, no steps lost)"
        )

    def _keeps(self) -> bool:
        return self.rebuildable and self.opts.keep_survivors

    # -------------------------------------------------------- checkpoints
    def _snapshot_period(self) -> int:
        cost = self._snapshot_cost_s()
        return self.opts.snapshot_period(
            self.snapshot_copy_s if cost is None else cost, self._recent_step_s(5), self.rebuildable
        )

    def _snapshot_cost_s(self, window: int = 60) -> float | None:
        """What a snapshot costs the training, measured: the median time of the recent steps that ran while
        one was being taken (the one after it was requested; the taking worker's other thread competes
        with its step) over that of the other recent steps. None until there are 3 of each (every step
        snapshotted: the workers' start-up estimate of the copy stands)."""
        recent = list(zip(self.step_times[-window:], self.after_snapshot[-window:]))
        hit = [t for t, snap in recent if snap]
        rest = [t for t, snap in recent if not snap]
        if len(hit) < 3 or len(rest) < 3:
            return None
        return max(0.0, statistics.median(hit) - statistics.median(rest))

    def _take_snapshot(self, step: int, force: bool = False) -> None:
        if step % self._snapshot_period() and not force:
            return
        rank = step % len(self.group)
        self.snapshots[step] = self.engine.call(self.group[rank], "snapshot", step)
        self._snapshot_requested = True
        for s in sorted(self.snapshots)[:-2]:
            del self.snapshots[s]
        if not self.rebuildable:
            # MCCL: have this step's snapshot in the object store before the next step starts. Once a peer
            # dies, a survivor's main thread blocks in MindSpore waiting for the all-reduce and may hold the
            # GIL, so neither its export nor a snapshot it still owes would come back (a step was lost so)
            self.engine.wait([self.snapshots[step]], timeout=60.0)

    def _checkpoint_due(self, step: int) -> bool:
        every = self.opts.checkpoint_every or self.cfg.checkpoint_every
        return step % every == 0 or (
            self.opts.checkpoint_secs is not None and time.time() - self._last_ckpt_time >= self.opts.checkpoint_secs
        )

    def _checkpoint(self, step: int, force: bool = False) -> None:
        """Write the snapshot of ``step`` to disk on a driver thread (``force``: now, waiting for it)."""
        if step not in self.snapshots:
            return
        if self._ckpt_thread is not None and self._ckpt_thread.is_alive():
            if not force:
                return  # the previous checkpoint is still being written; skip rather than queue up
            self._ckpt_thread.join()
        ref, world = self.snapshots[step], len(self.group)
        self._last_ckpt_time = time.time()

        def write() -> None:
            out = self.engine.outcome(ref, timeout=300)
            if out.ok:
                self.run_dir.save(out.value, world_size=world)
            else:
                log.warning("checkpoint of step %d skipped: %s", step, out.error)

        self._ckpt_thread = threading.Thread(target=write, daemon=True)
        self._ckpt_thread.start()
        if force:
            self._ckpt_thread.join()

    def _final_checkpoint(self, state: TrainState) -> None:
        if self._ckpt_thread is not None:
            self._ckpt_thread.join()
        self.run_dir.save(state, world_size=len(self.group) or 1)

    # ---------------------------------------------------------------- run
    def run(self, state: TrainState | None = None, max_steps: int | None = None) -> dict[str, Any]:
        o = self.opts
        stop_at = min(self.total_steps, max_steps or self.total_steps)
        self.engine.start(o.address, num_cpus=o.workers + o.spares + 1)
        try:
            return self._run(state, stop_at)
        finally:
            if self._ckpt_thread is not None:
                self._ckpt_thread.join()
            for m in self.pool + self.sched_pool:
                self.engine.kill(m.actor)
            if self.standby is not None:
                self._retire(self.standby.members, self.standby.sched)
            self._retire_group()
            self.engine.shutdown()

    def _run(self, state: TrainState | None, stop_at: int) -> dict[str, Any]:
        o = self.opts
        slots = o.workers + o.spares
        self.engine.reserve(slots, o.placement)
        self._bundle_nodes = self.engine.bundle_nodes()
        self.free_bundles = list(range(slots))
        self._initial_spawns_done = False
        for _ in range(slots):
            self._spawn_worker()
        self._spawn_scheduler()
        self._initial_spawns_done = True
        step = state.step if state is not None else 0
        ledger = SampleLedger(
            self.num_train, partial_epoch=state.sampler.epoch if state and state.sampler.offset else None
        )
        t_start = time.time()
        for attempt in range(3):
            try:
                self._form_group(o.workers, state, step)
                break
            except GroupFailure as failure:
                self._say(f"group formation failed ({failure.detail}); retrying")
                self._retire_group()
                if attempt == 2:
                    raise OMSError(f"could not form a group of {o.workers} workers: {failure.detail}") from None
        self._say(
            f"group of {o.workers} worker(s) formed in {time.time() - t_start:.1f} s (threads per worker: {o.threads})"
        )
        last_loss = float(state.extra.get("final_loss", float("nan"))) if state else float("nan")
        window_t, window_n = time.perf_counter(), 0
        with step_progress(stop_at, step, title=f"train x{o.workers}", disable=self.quiet) as bar:
            while step < stop_at:
                t0 = time.time()
                try:
                    results = self._run_step(step)
                except GroupFailure as failure:
                    step = self._recover(failure, step, ledger)
                    continue
                step += 1
                dt = time.time() - t0
                self.step_times.append(dt)
                self.after_snapshot.append(self._snapshot_requested)
                self._snapshot_requested = False
                self.stash_times.append(max(r["stash_s"] for r in results))
                self.comm_times.append(max(r["comm_s"] for r in results))
                compiled = any(r.get("compiled") for r in results)
                self.late_compiles += compiled
                self.phase_times.append(
                    {
                        "compute": max(r["compute_s"] for r in results),
                        "update": max(r["update_s"] for r in results),
                        "driver": dt - max(r["worker_s"] for r in results),
                    }
                )
                last_loss = float(sum(r["loss"] for r in results))
                self.losses.append(last_loss)
                ledger.record(step, results[0]["epoch"], np.concatenate([r["samples"] for r in results]))
                if self._pending_recovery is not None:
                    rec = self._pending_recovery
                    rec["first_step_compiled"] = compiled
                    rec["recover_s"] = round(time.time() - rec.pop("t_fail"), 3)
                    rec["phases_s"]["first_step"] = round(time.time() - rec.pop("t_formed"), 3)
                    self.recoveries.append(rec)
                    self._pending_recovery = None
                    self._say(
                        f"recovered: world {rec['world_before']} -> {rec['world_after']}, "
                        f"{rec['recover_s']:.2f} s from failure to step {step}, {rec['steps_lost']} step(s) lost"
                    )
                # a disk checkpoint is written from a snapshot: take one when it is due, whatever --snapshot-every
                ckpt_due = step == stop_at or self._checkpoint_due(step)
                self._take_snapshot(step, force=ckpt_due)
                if self._refill_pending:
                    self._refill()
                window_n += 1
                if step % self.cfg.log_every == 0 or step == stop_at:
                    now = time.perf_counter()
                    sps = window_n * self.cfg.batch_size / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    bar.update(step, last_loss, sps, info=f"world {len(self.group)}")
                    self.run_dir.append_metrics(
                        {
                            "step": step,
                            "loss": last_loss,
                            "samples_per_s": sps,
                            "world_size": len(self.group),
                            "time": time.time(),
                        }
                    )
                preempted = [r["rank"] for r in results if r["preempted"]]
                if preempted:
                    failure = GroupFailure("preempt", preempted, step, t0, "SIGTERM")
                    step = self._recover(failure, step, ledger)
                    continue
                if ckpt_due:
                    self._checkpoint(step, force=step == stop_at)
                if step < stop_at:
                    self._maybe_scale_up(step)
                    self._prepare_standby()
        return self._summary(step, last_loss, ledger, stop_at)

    def _summary(self, step: int, loss: float, ledger: SampleLedger, stop_at: int) -> dict[str, Any]:
        fields = self.engine.get(self.engine.call(self.group[0], "summary_fields"), timeout=300)
        seen, dup, missed = ledger.counts()
        times = np.asarray(self.step_times)
        med = float(np.median(times)) if len(times) else None
        summary = {
            "status": "completed" if step >= self.total_steps else "stopped",
            "steps": step,
            "total_steps": self.total_steps,
            "final_loss": loss,
            "eval": fields["eval"],
            "val": fields["val"],
            "params_sha256": fields["params_sha256"],
            "samples_seen": fields["samples_seen"],
            "samples_seen_this_run": seen,
            "duplicate_samples": dup,
            "missed_samples": missed,
            "epoch": fields["epoch"],
            "step_time_s": {
                "median": med,
                "mean": float(times.mean()) if len(times) else None,
                "p90": float(np.percentile(times, 90)) if len(times) else None,
            },
            "snapshot_overhead": (float(np.median(self.stash_times)) / med) if med else None,
            "snapshot_every": self._snapshot_period(),
            "snapshot_copy_s": self.snapshot_copy_s,
            "snapshot_cost_s": self._snapshot_cost_s(),
            "comm_s": {
                "backend": self.opts.comm,
                "median": float(np.median(self.comm_times)) if self.comm_times else None,
            },
            # medians over steps of the slowest rank's forward+backward, optimizer update, and the step time
            # not spent inside any worker's step call (engine round trip, driver bookkeeping)
            "phases_s": {
                k: float(np.median([p[k] for p in self.phase_times])) if self.phase_times else None
                for k in ("compute", "update", "driver")
            },
            "world_size": len(self.group),
            "workers": self.opts.workers,
            "recoveries": self.recoveries,
            "worker_cores": self.worker_cores,  # per rank of the last group: pinned cores (None: not pinned)
            "late_compiles": self.late_compiles,
            "rescales": self.rescales,
            "dataset": self.cfg.dataset,
            "model": self.cfg.model.get("name"),
            "elastic": self.opts.to_dict(),
            "engine": self.engine.name,
        }
        self.run_dir.write_summary(summary)
        return summary
