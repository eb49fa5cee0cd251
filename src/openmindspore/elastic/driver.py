"""The elastic driver: forms worker groups on the engine, runs steps in lock-step, detects failures,
recovers from survivors' or snapshot state, rescales, and writes asynchronous disk checkpoints.

Failure semantics (see docs/distributed.md):

* **crash** — a worker process dies: the engine reports it at once. Survivors are blocked in the
  all-reduce of that step; their state after the previous step is exported from another thread of their
  process, then the whole group is retired (a broken MindSpore group cannot be re-initialised).
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
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmindspore.data import ResumableSampler, load_dataset
from openmindspore.elastic.accounting import SampleLedger
from openmindspore.elastic.options import ElasticOptions
from openmindspore.elastic.worker import Scheduler, Worker
from openmindspore.engine import ActorRef, Engine, get_engine
from openmindspore.errors import OMSError
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig
from openmindspore.train.progress import step_progress
from openmindspore.train.state import TrainState

__all__ = ["ElasticTrainer", "GroupFailure"]

log = logging.getLogger(__name__)


class GroupFailure(Exception):
    def __init__(self, kind: str, ranks: list[int], step: int, t_fail: float, detail: str = "") -> None:
        super().__init__(f"{kind} of rank(s) {ranks} at step {step}: {detail}")
        self.kind, self.ranks, self.step, self.t_fail, self.detail = kind, ranks, step, t_fail, detail
        self.t_detect = time.time()


@dataclass
class _Group:
    members: list[ActorRef]
    sched: ActorRef | None
    connect: list[Any]  # futures of Worker.connect
    started: float


@dataclass
class _Member:
    actor: ActorRef
    ready: Any  # future of Worker.ready()


class ElasticTrainer:
    """Runs one elastic data-parallel job; ``run()`` returns the summary dict."""

    def __init__(self, cfg: TrainConfig, opts: ElasticOptions, run: RunDir, quiet: bool = True,
                 engine: Engine | None = None) -> None:
        self.cfg, self.opts, self.run_dir, self.quiet = cfg, opts.validate(cfg.batch_size), run, quiet
        self.cfg_dict = cfg.model_dump(mode="json")
        self.engine = engine or get_engine(opts.engine)
        data = load_dataset(cfg.dataset)
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
        self.snapshots: dict[int, Any] = {}  # step -> driver-owned engine object with the state bytes
        self.step_times: list[float] = []
        self.stash_times: list[float] = []
        self.losses: list[float] = []
        self._ckpt_thread: threading.Thread | None = None
        self._last_ckpt_time = time.time()
        self._pending_recovery: dict[str, Any] | None = None
        self._initial_spawns_done = False
        self.fault_log = run.path / "faults_fired.log"

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
        actor = self.engine.spawn(Worker, self.cfg_dict, self.opts.threads, self.opts.workers, name=f"worker-b{bundle}",
                                  bundle=bundle, concurrency=4)
        self.pool.append(_Member(actor, self.engine.call(actor, "ready")))
        return True

    def _spawn_scheduler(self) -> None:
        actor = self.engine.spawn(Scheduler, name="ms-scheduler", bundle=None, concurrency=2)
        self.sched_pool.append(_Member(actor, self.engine.call(actor, "ready")))

    def _refill(self) -> None:
        """Start replacement processes for free slots (cold start, in the background)."""
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
        futs = [self.engine.call(m.actor, "connect", rank, size, host_port) for rank, m in enumerate(members)]
        return _Group([m.actor for m in members], sched, futs, time.time())

    def _activate(self, g: _Group, state: bytes | None, after_step: int) -> dict[str, Any]:
        """Wait for ``g`` to be connected, load ``state`` into it and make it the active group."""
        self.engine.wait(g.connect, timeout=120, num=len(g.connect))
        outs = [self.engine.outcome(f, timeout=0) for f in g.connect]
        self.group, self.group_sched = g.members, g.sched
        bad = [i for i, o in enumerate(outs) if not o.ok]
        if bad:
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"connect failed: {outs[bad[0]].error}")
        order = sorted(range(len(outs)), key=lambda i: outs[i].value["rank"])  # MindSpore's rank order
        self.group = [g.members[i] for i in order]
        self._read_fault_log()
        faults = [(i, f.kind, f.step, f.rank) for i, f in enumerate(self.opts.faults) if i not in self.fired]
        loads = [self.engine.call(a, "load", state, faults, str(self.fault_log)) for a in self.group]
        self.engine.wait(loads, timeout=120, num=len(loads))
        louts = [self.engine.outcome(f, timeout=0) for f in loads]
        bad = [i for i, o in enumerate(louts) if not o.ok]
        if bad:
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"load failed: {louts[bad[0]].error}")
        return {"comm_init_s": max(o.value["comm_init_s"] for o in outs)}

    def _form_group(self, size: int, state: bytes | None, after_step: int) -> dict[str, Any]:
        """Make a group of ``size`` active: the pre-connected standby group when it fits, else a new one."""
        sb, self.standby = self.standby, None
        if sb is not None and len(sb.members) == size:
            info = self._activate(sb, state, after_step)
            info["standby"] = True
        else:
            if sb is not None:
                self._retire(sb.members, sb.sched)
            info = self._activate(self._connect(self._take_ready(size)), state, after_step)
            info["standby"] = False
        self._refill()
        return info

    def _prepare_standby(self) -> None:
        """Pre-connect a standby group of ``--workers`` processes when enough are warm."""
        if self.standby is not None or self.opts.spares < self.opts.workers:
            return
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

    # --------------------------------------------------------------- step
    def _deadline(self) -> float:
        if len(self.step_times) < 3:
            return self.opts.hang_timeout
        return min(self.opts.hang_timeout, max(1.0, 5 * statistics.median(self.step_times[-20:])))

    def _run_step(self, step: int) -> list[dict[str, Any]]:
        t0 = time.time()
        futs = [self.engine.call(a, "step", step) for a in self.group]
        rank_of = {id(f): r for r, f in enumerate(futs)}
        results: dict[int, dict[str, Any]] = {}
        pending = list(futs)
        deadline = t0 + self._deadline()
        while pending:
            ready, pending = self.engine.wait(pending, timeout=max(0.0, deadline - time.time()))
            for f in ready:
                out = self.engine.outcome(f, timeout=0)
                r = rank_of[id(f)]
                if out.ok:
                    results[r] = out.value
                else:
                    dead = [rank_of[id(g)] for g in pending + ready
                            if self.engine.outcome(g, timeout=0).status == "dead"]
                    raise GroupFailure("crash", sorted(set(dead) | {r}), step + 1, t0, out.error)
            if pending and time.time() >= deadline:
                hung = self._unresponsive([rank_of[id(f)] for f in pending],
                                          timeout=max(2.0, 0.5 * self._deadline()))
                if hung or time.time() - t0 >= 3 * self.opts.hang_timeout:
                    raise GroupFailure("hang", hung or sorted(rank_of[id(f)] for f in pending), step + 1, t0,
                                       f"step {step + 1} exceeded its {self._deadline():.1f} s deadline")
                deadline = time.time() + self._deadline()
        return [results[r] for r in range(len(self.group))]

    def _unresponsive(self, ranks: list[int], timeout: float) -> list[int]:
        """Ranks whose process does not answer a heartbeat within ``timeout`` (a thread of a live worker
        answers even while its main thread waits in a collective)."""
        pings = {r: self.engine.call(self.group[r], "ping") for r in ranks}
        self.engine.wait(list(pings.values()), timeout=timeout, num=len(pings))
        return [r for r, f in pings.items() if not self.engine.outcome(f, timeout=0).ok]

    # ----------------------------------------------------------- recovery
    def _best_state(self, alive: list[int], fallback_step: int) -> tuple[int, bytes, list[int]]:
        """The newest state: exported by a live member (another thread of its process), else the newest
        snapshot in the engine's object store. Also returns the members found dead meanwhile."""
        futs = {r: self.engine.call(self.group[r], "export_state") for r in alive}
        if futs:
            self.engine.wait(list(futs.values()), timeout=5.0, num=len(futs))
        best: tuple[int, bytes] | None = None
        dead = []
        for r, f in futs.items():
            out = self.engine.outcome(f, timeout=0)
            if out.ok and (best is None or out.value[0] > best[0]):
                best = out.value
            elif out.status == "dead":
                dead.append(r)
        for step in sorted(self.snapshots, reverse=True):
            if best is not None and best[0] >= step:
                break
            out = self.engine.outcome(self.snapshots[step], timeout=10)
            if out.ok:
                best = (step, out.value)
                break
        if best is None:
            raise OMSError(f"no state to recover from after step {fallback_step}: every process and snapshot is lost")
        return best[0], best[1], dead

    def _read_fault_log(self) -> None:
        """Injected faults that fired (each fires once; workers log them before the signal)."""
        if self.fault_log.is_file():
            self.fired |= {int(x) for x in self.fault_log.read_text().split()}

    def _recover(self, failure: GroupFailure, last_done: int, ledger: SampleLedger) -> int:
        """Retire the broken group, form a new one from the best state; returns the state's step."""
        if self._pending_recovery is not None:  # a failure during recovery: that one never completed
            rec = self._pending_recovery
            rec.pop("t_fail")
            self.recoveries.append({**rec, "recover_s": None, "interrupted": True})
            self._pending_recovery = None
        world_before = len(self.group)
        alive = [r for r in range(world_before) if r not in failure.ranks]
        self._say(f"{failure.kind}: rank(s) {failure.ranks} during step {failure.step} "
                  f"(detected after {failure.t_detect - failure.t_fail:.2f} s)")
        state_step, blob, also_dead = self._best_state(alive, last_done)
        failure.ranks = sorted(set(failure.ranks) | set(also_dead))
        self._retire_group()
        steps_lost = ledger.rollback(state_step)
        if state_step > last_done:  # the failed step completed on the survivors: account for it
            self._record_reconstructed(ledger, blob, state_step)
        deadline = time.time() + 120
        self._refill()
        if not self.standby:  # replacements are starting: wait a bounded time rather than shrink
            self._prepare_standby()
            if not self.standby and len(self.pool) >= self.opts.workers > len(self._ready(self.pool)):
                self._say(f"waiting up to {self.opts.rejoin_wait:.0f} s for replacement processes")
                until = time.time() + self.opts.rejoin_wait
                while time.time() < until and len(self._ready(self.pool, timeout=0.5)) < self.opts.workers:
                    pass
        while True:
            self._refill()
            ready = len(self._ready(self.pool, timeout=0.1)) + (len(self.standby.members) if self.standby else 0)
            if ready < self.opts.min_workers:
                if not self.pool or time.time() > deadline:
                    self._final_checkpoint(state_step, blob)
                    raise OMSError(
                        f"{failure.kind} of rank(s) {failure.ranks} at step {failure.step} left {ready} worker "
                        f"process(es) and no restarts (--max-restarts={self.opts.max_restarts}), below "
                        f"--min-workers={self.opts.min_workers}; final checkpoint at step {state_step} in "
                        f"{self.run_dir.path}; resume with `oms train --resume {self.run_dir.path}`")
                self._ready(self.pool, timeout=1.0)  # wait for cold-started replacements
                continue
            try:
                info = self._form_group(min(self.opts.workers, ready), blob, state_step)
                size = len(self.group)
                break
            except GroupFailure as again:  # a failure during recovery: retire and try again
                self._say(f"failure during recovery ({again.detail}); retrying")
                self._retire_group()
        self._pending_recovery = {
            "step": failure.step, "kind": failure.kind, "failed_ranks": failure.ranks,
            "detect_s": round(failure.t_detect - failure.t_fail, 3), "t_fail": failure.t_fail,
            "world_before": world_before, "world_after": size, "steps_lost": steps_lost,
            "resumed_from_step": state_step, "comm_init_s": round(info["comm_init_s"], 3),
            "standby_group": info["standby"],
        }
        self.snapshots = {s: r for s, r in self.snapshots.items() if s <= state_step}
        return state_step

    def _record_reconstructed(self, ledger: SampleLedger, blob: bytes, step: int) -> None:
        """Account for a step that completed on the survivors but whose results never reached the driver:
        its global batch is the one that ends at the state's sampler position."""
        s = TrainState.from_bytes(blob).sampler
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
        elif len(self._ready(self.pool)) < self.opts.workers:
            return  # ... or enough warm processes are up
        t0 = time.time()
        before = len(self.group)
        state_step, blob, _ = self._best_state(list(range(before)), step)
        self._retire_group()
        info = self._form_group(self.opts.workers, blob, state_step)
        self.rescales.append({"step": step, "world_before": before, "world_after": self.opts.workers,
                              "pause_s": round(time.time() - t0, 3), "comm_init_s": round(info["comm_init_s"], 3)})
        self._say(f"scaled up {before} -> {self.opts.workers} workers at step {step} "
                  f"({time.time() - t0:.2f} s pause, no steps lost)")

    # -------------------------------------------------------- checkpoints
    def _take_snapshot(self, step: int, force: bool = False) -> None:
        if step % self.opts.snapshot_every and not force:
            return
        rank = step % len(self.group)
        self.snapshots[step] = self.engine.call(self.group[rank], "snapshot", step)
        for s in sorted(self.snapshots)[:-2]:
            del self.snapshots[s]

    def _maybe_checkpoint(self, step: int, force: bool = False) -> None:
        every = self.opts.checkpoint_every or self.cfg.checkpoint_every
        due = step % every == 0 or (self.opts.checkpoint_secs is not None
                                    and time.time() - self._last_ckpt_time >= self.opts.checkpoint_secs)
        if not (due or force) or step not in self.snapshots:
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
                self.run_dir.save(TrainState.from_bytes(out.value), world_size=world, blob=out.value)
            else:
                log.warning("checkpoint of step %d skipped: %s", step, out.error)

        self._ckpt_thread = threading.Thread(target=write, daemon=True)
        self._ckpt_thread.start()
        if force:
            self._ckpt_thread.join()

    def _final_checkpoint(self, step: int, blob: bytes) -> None:
        if self._ckpt_thread is not None:
            self._ckpt_thread.join()
        self.run_dir.save(TrainState.from_bytes(blob), world_size=len(self.group) or 1, blob=blob)

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
        self.free_bundles = list(range(slots))
        self._initial_spawns_done = False
        for _ in range(slots):
            self._spawn_worker()
        self._spawn_scheduler()
        self._initial_spawns_done = True
        blob = state.to_bytes() if state is not None else None
        step = state.step if state is not None else 0
        ledger = SampleLedger(self.num_train, partial_epoch=state.sampler.epoch if state and state.sampler.offset else None)
        t_start = time.time()
        for attempt in range(3):
            try:
                self._form_group(o.workers, blob, step)
                break
            except GroupFailure as failure:
                self._say(f"group formation failed ({failure.detail}); retrying")
                self._retire_group()
                if attempt == 2:
                    raise OMSError(f"could not form a group of {o.workers} workers: {failure.detail}") from None
        self._say(f"group of {o.workers} worker(s) formed in {time.time() - t_start:.1f} s "
                  f"(threads per worker: {o.threads})")
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
                self.stash_times.append(max(r["stash_s"] for r in results))
                last_loss = float(sum(r["loss"] for r in results))
                self.losses.append(last_loss)
                ledger.record(step, results[0]["epoch"], np.concatenate([r["samples"] for r in results]))
                if self._pending_recovery is not None:
                    rec = self._pending_recovery
                    rec["recover_s"] = round(time.time() - rec.pop("t_fail"), 3)
                    self.recoveries.append(rec)
                    self._pending_recovery = None
                    self._say(f"recovered: world {rec['world_before']} -> {rec['world_after']}, "
                              f"{rec['recover_s']:.2f} s from failure to step {step}, {rec['steps_lost']} step(s) lost")
                self._take_snapshot(step, force=step == stop_at)
                window_n += 1
                if step % self.cfg.log_every == 0 or step == stop_at:
                    now = time.perf_counter()
                    sps = window_n * self.cfg.batch_size / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    bar.update(step, last_loss, sps, info=f"world {len(self.group)}")
                    self.run_dir.append_metrics({"step": step, "loss": last_loss, "samples_per_s": sps,
                                                 "world_size": len(self.group), "time": time.time()})
                preempted = [r["rank"] for r in results if r["preempted"]]
                if preempted:
                    failure = GroupFailure("preempt", preempted, step, t0, "SIGTERM")
                    step = self._recover(failure, step, ledger)
                    continue
                self._maybe_checkpoint(step, force=step == stop_at)
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
            "steps": step, "total_steps": self.total_steps, "final_loss": loss,
            "eval": fields["eval"], "val": fields["val"], "params_sha256": fields["params_sha256"],
            "samples_seen": fields["samples_seen"], "samples_seen_this_run": seen,
            "duplicate_samples": dup, "missed_samples": missed, "epoch": fields["epoch"],
            "step_time_s": {"median": med, "mean": float(times.mean()) if len(times) else None,
                            "p90": float(np.percentile(times, 90)) if len(times) else None},
            "snapshot_overhead": (float(np.median(self.stash_times)) / med) if med else None,
            "world_size": len(self.group), "workers": self.opts.workers, "recoveries": self.recoveries,
            "rescales": self.rescales, "dataset": self.cfg.dataset, "model": self.cfg.model.get("name"),
            "elastic": self.opts.to_dict(), "engine": self.engine.name,
        }
        self.run_dir.write_summary(summary)
        return summary
