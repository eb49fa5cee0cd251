"""The warm processes of an elastic run: reserved slots, started workers not (yet) in a group, spares.

Owns the reserved process slots (engine bundles; on a joined cluster their count fitted to its free CPUs)
and which are free, the pool of started workers and of MindSpore scheduler processes, and the replacement
budget (``--max-restarts``). Starts and kills processes through the engine; knows nothing of groups (the
caller says how many slots are in use).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from openmindspore.elastic.options import ResolvedOptions, valid_world_sizes
from openmindspore.elastic.processes import Scheduler
from openmindspore.elastic.worker import Worker
from openmindspore.engine import ActorRef, Engine
from openmindspore.errors import OMSError

__all__ = ["WorkerPool"]

SETTLE_S = 10.0  # joined cluster: longest wait for CPUs a just-ended job still holds before fitting to them


@dataclass
class _Member:
    actor: ActorRef
    ready: Any  # future of Worker.ready() / Scheduler.ready()


class WorkerPool:
    """Warm workers for ``cfg`` (the training config as a dict, as workers get it; ``global_batch`` its batch
    size) and scheduler processes (see the module docstring)."""

    def __init__(self, engine: Engine, opts: ResolvedOptions, cfg: dict[str, Any], global_batch: int) -> None:
        self.engine, self.opts, self.cfg, self.global_batch = engine, opts, cfg, global_batch
        self.workers: list[_Member] = []
        self.schedulers: list[_Member] = []
        self.free_bundles: list[int] = []
        self.restarts = 0
        self._bundle_nodes: list[tuple[str, float] | None] = []
        self._refill_pending = False
        self._initial_spawns_done = False
        self._took_once = False  # the first group's workers were taken

    def start(self) -> None:
        """Reserve ``workers + spares`` slots and start a warm worker in each, and (``--comm mccl`` only) a
        MindSpore scheduler process. On a joined cluster the spares are first fitted to its free CPUs
        (:meth:`fit_to_cluster`)."""
        self.fit_to_cluster()
        slots = self.opts.workers + self.opts.spares
        self.engine.reserve(slots, self.opts.placement)
        self._bundle_nodes = self.engine.bundle_nodes()
        self.free_bundles = list(range(slots))
        self._initial_spawns_done = False
        for _ in range(slots):
            self._spawn_worker()
        if self.opts.comm == "mccl":  # shm and tcp groups form without one
            self._spawn_scheduler()
        self._initial_spawns_done = True

    def fit_to_cluster(self, settle_s: float = SETTLE_S) -> None:
        """On a joined cluster (not the embedded one, sized for the run): wait up to ``settle_s`` s for
        ``workers + spares`` CPUs to be free (a job that just ended frees its CPUs within moments), then fit
        auto spares to the free CPUs with a one-line notice, or fail at once when even the workers (or
        explicit spares) do not fit (:meth:`ResolvedOptions.fit_spares`)."""
        if self.engine.owns_cluster:
            return
        total, deadline = self.engine.total_cpus(), time.monotonic() + settle_s
        want = min(self.opts.workers + self.opts.spares, total)  # never wait for CPUs the cluster lacks
        free = self.engine.free_cpus()
        while free < want and time.monotonic() < deadline:
            time.sleep(0.25)
            free = self.engine.free_cpus()
        fitted = self.opts.fit_spares(free, total, self.global_batch)
        if fitted.spares != self.opts.spares:
            print(
                f"oms: --spares {fitted.spares} (fitted: the cluster has {free:g} free CPUs, {self.opts.workers} "
                f"for the workers; pass --spares to choose)",
                file=sys.stderr,
                flush=True,
            )
        self.opts = fitted

    def shutdown(self) -> None:
        """Kill every process still in the pool."""
        for m in self.workers + self.schedulers:
            self.engine.kill(m.actor)

    @property
    def size(self) -> int:
        """Workers in the pool, started or still starting."""
        return len(self.workers)

    def _spawn_worker(self) -> bool:
        if not self.free_bundles or not self.restarts_left():
            return False
        if self._initial_spawns_done:
            self.restarts += 1
        bundle = self.free_bundles.pop(0)
        # the first workers also compile the shapes of the smaller groups they may shrink to; a replacement
        # (started while a group waits for it) only warms up its own
        o = self.opts
        shrink_to = (
            ()
            if self._initial_spawns_done
            else tuple(n for n in valid_world_sizes(self.global_batch, o.workers) if o.min_workers <= n < o.workers)
        )
        actor = self.engine.spawn(
            Worker,
            self.cfg,
            self._threads_for(bundle),
            o.workers,
            shrink_to,
            name=f"worker-b{bundle}",
            bundle=bundle,
            concurrency=4,
        )
        self.workers.append(_Member(actor, self.engine.call(actor, "ready")))
        return True

    def _threads_for(self, bundle: int) -> int:
        """CPU threads of the worker in ``bundle``: ``cores // workers`` on the embedded cluster; on a real
        cluster, that node's CPUs divided by the active workers the placement put on it."""
        nodes = self._bundle_nodes
        where = nodes[bundle] if self.opts.address is not None and bundle < len(nodes) else None
        if where is None:
            return self.opts.threads
        node, cpus = where
        on_node = sum(1 for x in nodes if x is not None and x[0] == node)
        return max(1, int(cpus // max(1, min(self.opts.workers, on_node))))

    def _spawn_scheduler(self) -> None:
        actor = self.engine.spawn(Scheduler, name="ms-scheduler", bundle=None, concurrency=2)
        self.schedulers.append(_Member(actor, self.engine.call(actor, "ready")))

    def take_scheduler(self) -> ActorRef:
        """A started MindSpore scheduler process (another is started to stay warm for the next group)."""
        if not self.schedulers:
            self._spawn_scheduler()
        sm = self.schedulers.pop(0)
        self._spawn_scheduler()  # keep one warm for the next group
        if not self.engine.get(sm.ready, timeout=120):
            raise OMSError("the MindSpore scheduler process did not start")
        return sm.actor

    def refill(self, in_use: int, defer: bool = False) -> None:
        """Start replacement processes for free slots (cold start, in the background) beside the ``in_use``
        ones in groups. ``defer``: only after the next completed step (:meth:`refill_if_deferred`; a cold
        start takes CPU from a recovering group on a small node)."""
        if defer:
            self._refill_pending = True
            return
        self._refill_pending = False
        want = self.opts.workers + self.opts.spares - in_use - len(self.workers)
        while want > 0 and self._spawn_worker():
            want -= 1
        if not self.schedulers and self.opts.comm == "mccl":
            self._spawn_scheduler()

    def refill_if_deferred(self, in_use: int) -> None:
        if self._refill_pending:
            self.refill(in_use)

    def restarts_left(self) -> bool:
        return not self._initial_spawns_done or self.restarts < self.opts.max_restarts

    def warm(self, timeout: float = 0.0) -> int:
        """How many pool workers are up (waiting up to ``timeout`` s for all); dead ones are dropped and
        their slots freed."""
        return len(self._ready(timeout))

    def _ready(self, timeout: float = 0.0) -> list[_Member]:
        futures = [m.ready for m in self.workers]
        if timeout:
            self.engine.wait(futures, timeout=timeout, num=len(futures))
        good = []
        for m in list(self.workers):
            out = self.engine.outcome(m.ready, timeout=0)
            if out.ok:
                m.actor.pid = out.value
                good.append(m)
            elif out.status != "pending":
                self.workers.remove(m)
                self.release(m.actor)
        return good

    def take(self, size: int, wait_s: float = 120.0) -> list[ActorRef]:
        """``size`` started workers out of the pool, waiting up to ``wait_s`` s for them to be up. SPREAD: also
        wait until the ready ones are on as many nodes as the pool's can be: for the run's first group up to
        ``wait_s`` (workers start at different speeds on different nodes; the group should span them), later
        up to 30 s (a replacement should not wait for a node that may just have died)."""
        deadline = time.time() + wait_s
        spread_until = time.time() + (30.0 if self._took_once else wait_s)
        self._took_once = True
        spread = self.opts.placement == "SPREAD"
        while True:
            ready = self._ready()
            if len(ready) >= size and (not spread or self._spans(ready, size) or time.time() > spread_until):
                break
            if time.time() > deadline:
                if len(ready) >= size:
                    break
                raise OMSError(
                    f"only {len(ready)} of {size} worker processes started within {wait_s:.0f} s; every node needs "
                    "the same Python environment (make install) and free CPUs (ray status shows them)"
                )
            self._ready(timeout=0.5)
        if self.opts.placement == "SPREAD":
            ready = self._node_by_node(ready)
        for m in ready[:size]:
            self.workers.remove(m)
        return [m.actor for m in ready[:size]]

    def _node(self, m: _Member) -> str:
        where = dict(enumerate(self._bundle_nodes)).get(-1 if m.actor.bundle is None else m.actor.bundle)
        return str(where[0]) if where else ""

    def _spans(self, ready: list[_Member], size: int) -> bool:
        """``ready`` holds workers on as many nodes as a group of ``size`` from the whole pool could span."""
        return len({self._node(m) for m in ready}) >= min(size, len({self._node(m) for m in self.workers}))

    def _node_by_node(self, members: list[_Member]) -> list[_Member]:
        """``members`` reordered to take one from each node in turn (the first of every node, then the
        second, ...), so that a group spans the nodes as ``--placement SPREAD`` asks."""
        seen, turn = Counter[str](), []
        for m in members:
            seen[self._node(m)] += 1
            turn.append(seen[self._node(m)])
        return [m for _, m in sorted(zip(turn, members), key=lambda t: t[0])]

    def release(self, actor: ActorRef) -> None:
        """Kill ``actor`` and free its slot."""
        self.engine.kill(actor)
        if actor.bundle is not None and actor.bundle not in self.free_bundles:
            self.free_bundles.append(actor.bundle)
