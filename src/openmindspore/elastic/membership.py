"""Who trains: the group of workers that is active, the standby group, and their warm pool.

Owns the active group (its members in rank order, its scheduler, its members' pinned cores and measured
state-copy time), the pre-connected standby group (MCCL), the shm group names, and the
:class:`~openmindspore.elastic.pool.WorkerPool` (slots, warm workers and spares, restarts). Forms groups
(connects members, loads a state and the still-armed faults into them) and retires them. Touches
processes only through the engine; reads the fault plan.

A new group is formed from warm pool processes: the same world size when enough are ready, otherwise
the survivors' count (``>= --min-workers``); with shm and tcp, live survivors stay and the group is
rebuilt around them in their processes. A tcp group whose members are on more than one engine node gets
each rank's node id and TCP endpoint in its spec; on one node it is an shm group.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from openmindspore.elastic.faults import FaultPlan
from openmindspore.elastic.messages import CommSpec, ConnectResult, LoadResult
from openmindspore.elastic.options import ResolvedOptions
from openmindspore.elastic.pool import WorkerPool
from openmindspore.elastic.steps import GroupFailure
from openmindspore.engine import ActorRef, Engine
from openmindspore.train.state import TrainState

__all__ = ["Formed", "Membership"]


@dataclass
class _Group:
    members: list[ActorRef]
    sched: ActorRef | None
    connect: list[Any]  # futures of Worker.connect
    started: float
    comm_group: str | None = None  # shm group name (None: mccl)
    nodes: tuple[str, ...] = ()  # tcp: each member's engine node id (empty: one node)


@dataclass(frozen=True)
class Formed:
    """A group became active: its slowest member connected in ``comm_init_s``; it was the pre-connected
    ``standby`` group; ``kept`` live members stayed from the previous group."""

    comm_init_s: float
    standby: bool
    kept: int


def _connect_error(member: int, status: str, error: str, waited_s: float) -> str:
    """One member's connect failure, on one line: a member still connecting after the deadline is named with it
    and the usual cause (its node cannot reach another's ports)."""
    if status == "pending":
        return (
            f"[{member}] did not connect within {waited_s:.0f} s (can every node reach the others' ephemeral TCP "
            "ports? a firewall or a wrong node IP stops the group from forming)"
        )
    lines = [ln for ln in error.strip().splitlines() if ln.strip()]
    return f"[{member}] {status}: {lines[-1].strip()[-300:] if lines else ''}"


class Membership:
    """The processes of one run (see the module docstring): ``cfg`` is the training config (a dict, as
    workers get it), ``global_batch`` its batch size."""

    def __init__(
        self, engine: Engine, opts: ResolvedOptions, cfg: dict[str, Any], global_batch: int, faults: FaultPlan
    ) -> None:
        self.engine, self.opts, self.faults = engine, opts, faults
        self.pool = WorkerPool(engine, opts, cfg, global_batch)
        self.pin = opts.pin and opts.address is None  # one node: each active worker on its own cores
        self.group: list[ActorRef] = []
        self.group_sched: ActorRef | None = None
        self.standby: _Group | None = None
        self.worker_cores: list[list[int] | None] = []  # per rank of the active group (None: not pinned)
        self.nodes = 1  # engine nodes the active group spans
        self._ips: dict[str, str] = {}  # engine node id -> IP (asked again when a node is new)
        self._endpoints: dict[int, tuple[ActorRef, tuple[str, int]]] = {}  # id(worker) -> (worker, TCP endpoint)
        self.snapshot_copy_s = 0.0  # the slowest member's time to copy and hash the state once (at load)
        self._group_id = f"{os.getpid():x}{int(time.time() * 1000) % 0xFFFFFF:06x}"
        self._generation = 0

    def start(self) -> None:
        """Reserve the run's process slots and start the warm pool (:meth:`WorkerPool.start`)."""
        self.pool.start()

    def refill(self, defer: bool = False) -> None:
        """Start replacement processes for the free slots (see :meth:`WorkerPool.refill`)."""
        self.pool.refill(len(self.group) + self.standby_size(), defer)

    def refill_if_deferred(self) -> None:
        self.pool.refill_if_deferred(len(self.group) + self.standby_size())

    # -------------------------------------------------------------- group
    def shutdown(self) -> None:
        """Kill every process of the run."""
        self.pool.shutdown()
        if self.standby is not None:
            self._retire(self.standby.members, self.standby.sched)
        self.retire_group()

    def _connect(self, members: list[ActorRef], after_step: int = 0) -> _Group:
        """Start forming a communication group of ``members`` (non-blocking)."""
        size = len(members)
        if self.opts.comm != "mccl":
            spec = self._shm_spec()
            if self.opts.comm == "tcp" and size > 1:
                spec = self._across_nodes(spec, members, after_step)
            futs = [self.engine.call(a, "connect", rank, size, spec, self.pin) for rank, a in enumerate(members)]
            return _Group(members, None, futs, time.time(), spec.group, spec.nodes)
        sched, address = None, None
        if size > 1:
            sched = self.pool.take_scheduler()
            host = "127.0.0.1" if self.opts.address is None else socket.gethostbyname(socket.gethostname())
            sched_host, port = self.engine.get(self.engine.call(sched, "start", size, host), timeout=60)
            address = (str(sched_host), int(port))
        spec = CommSpec("mccl", sched=address)
        futs = [self.engine.call(a, "connect", rank, size, spec, self.pin) for rank, a in enumerate(members)]
        return _Group(members, sched, futs, time.time())

    def _shm_spec(self) -> CommSpec:
        """Connection spec of a new shm group (a fresh group name per formation)."""
        self._generation += 1
        o = self.opts
        return CommSpec(
            "shm",
            group=f"{self._group_id}-{self._generation}",
            timeout=3 * o.hang_timeout,
            chunk_bytes=int(o.bucket_mb * (1 << 20)),
            overlap=o.overlap,
            shard=o.shard_optimizer,
        )

    def _across_nodes(self, spec: CommSpec, members: list[ActorRef], after_step: int) -> CommSpec:
        """``spec`` for a ``tcp`` group of ``members``: each rank's node (where the engine placed its slot)
        and TCP endpoint (asked of the worker, on its node's IP). A group on one node stays an shm one."""
        where = dict(enumerate(self.engine.bundle_nodes()))
        nodes = [str((where.get(-1 if a.bundle is None else a.bundle) or ("local", 0.0))[0]) for a in members]
        if not set(nodes) <= set(self._ips):
            self._ips = self.engine.node_ips()
        self._endpoints = {id(a): self._endpoints[id(a)] for a in members if id(a) in self._endpoints}  # live ones
        t0 = time.time()
        futs = {
            i: self.engine.call(a, "endpoint", self._ips.get(n, "127.0.0.1"))
            for i, (a, n) in enumerate(zip(members, nodes))
            if id(a) not in self._endpoints
        }
        self.engine.wait(list(futs.values()), timeout=30.0, num=len(futs))
        for i, f in futs.items():
            out = self.engine.outcome(f, timeout=0)
            if not out.ok:
                raise GroupFailure("crash", [i], after_step + 1, t0, f"no TCP endpoint: {out.error[-300:]}")
            self._endpoints[id(members[i])] = (members[i], (str(out.value[0]), int(out.value[1])))
        addrs = tuple(self._endpoints[id(a)][1] for a in members)
        if len(set(nodes)) < 2:  # endpoints asked anyway (off the recovery path: a survivor's is known then)
            return spec
        return dataclasses.replace(spec, backend="tcp", shard=False, nodes=tuple(nodes), addrs=addrs)

    def _activate(
        self, g: _Group, state: TrainState | None, after_step: int, skip_load: frozenset[int] = frozenset()
    ) -> float:
        """Wait for ``g`` to be connected, load ``state`` into it and make it the active group; returns the
        slowest member's connect time. Members whose index is in ``skip_load`` already hold ``state``
        (survivors at that step) and keep theirs."""
        self._await_connect(g)
        outs = [self.engine.outcome(f, timeout=0) for f in g.connect]
        self.group, self.group_sched = g.members, g.sched
        bad = [i for i, o in enumerate(outs) if not o.ok]
        if bad:
            errs = "; ".join(_connect_error(i, outs[i].status, outs[i].error, time.time() - g.started) for i in bad)
            died = any(o.status == "dead" for o in outs)  # else all alive and still no group: retrying won't help
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"connect failed: {errs}", retryable=died)
        connected: list[ConnectResult] = [o.value for o in outs]
        order = sorted(range(len(outs)), key=lambda i: connected[i].rank)  # MindSpore's rank order
        self.group = [g.members[i] for i in order]
        self.worker_cores = [connected[i].cores for i in order]
        self.nodes = max(1, len(set(g.nodes)))
        keep = {id(g.members[i]) for i in skip_load}
        faults = self.faults.armed()
        loads = [
            self.engine.call(a, "load", None if id(a) in keep else state, faults, str(self.faults.log))
            for a in self.group
        ]
        self.engine.wait(loads, timeout=120, num=len(loads))
        louts = [self.engine.outcome(f, timeout=0) for f in loads]
        bad = [i for i, o in enumerate(louts) if not o.ok]
        if bad:
            raise GroupFailure("crash", bad, after_step + 1, g.started, f"load failed: {louts[bad[0]].error}")
        loaded: list[LoadResult] = [o.value for o in louts]
        self.snapshot_copy_s = max(r.snapshot_copy_s for r in loaded)
        return max(c.comm_init_s for c in connected)

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

    def form_group(
        self,
        size: int,
        state: TrainState | None,
        after_step: int,
        keep: list[ActorRef] | None = None,
        keep_at_state: frozenset[int] = frozenset(),
    ) -> Formed:
        """Make a group of ``size`` active, holding ``state`` (the state after ``after_step``; None: the
        workers' own): the pre-connected standby group when it fits, else a new one. ``keep`` (rebuildable
        backends): live workers that stay and rebuild their group in-process, topped up from the warm pool;
        those whose index is in ``keep_at_state`` already hold ``state``. Raises :class:`GroupFailure`."""
        if keep:
            for a in keep[size:]:
                self.pool.release(a)
            # the active group from here on: a failed formation retires (or :meth:`retain`\ s) every member
            members = self.group = keep[:size] + self.pool.take(size - min(size, len(keep)))
            skip = frozenset(i for i in keep_at_state if i < size)
            comm_init_s = self._activate(self._connect(members, after_step), state, after_step, skip_load=skip)
            self.refill(defer=True)
            return Formed(comm_init_s, standby=False, kept=min(size, len(keep)))
        sb, self.standby = self.standby, None
        if sb is not None and len(sb.members) == size:
            formed = Formed(self._activate(sb, state, after_step), standby=True, kept=0)
        else:
            if sb is not None:
                self._retire(sb.members, sb.sched)
            self.group = self.pool.take(size)
            formed = Formed(self._activate(self._connect(self.group, after_step), state, after_step), False, 0)
        self.refill()
        return formed

    def prepare_standby(self) -> None:
        """Pre-connect a standby group of ``--workers`` processes when enough are warm (MCCL only: shm groups
        form in milliseconds)."""
        if self.standby is not None or self.opts.spares < self.opts.workers or self.opts.rebuildable:
            return
        if self.pool.warm() >= self.opts.workers:
            self.standby = self._connect(self.pool.take(self.opts.workers, wait_s=0))

    def standby_size(self) -> int:
        return len(self.standby.members) if self.standby else 0

    def ready_to_grow(self) -> bool:
        """Enough processes to make the group ``--workers`` strong again: the standby group is connected and
        waiting, or (without one) enough warm processes are up."""
        sb = self.standby
        if sb is not None:
            return len(self.engine.wait(sb.connect, timeout=0, num=len(sb.connect))[0]) == len(sb.connect)
        return self.pool.warm() >= self.opts.workers - (len(self.group) if self.opts.keeps_survivors else 0)

    def keep_only(self, ranks: list[int]) -> list[ActorRef]:
        """Shrink the active group to the members of ``ranks`` (survivors that stay alive); the others are
        released. Returns the members kept."""
        keep = [self.group[r] for r in ranks]
        for r, a in enumerate(self.group):
            if r not in ranks:
                self.pool.release(a)
        self.group, self.group_sched = list(keep), None
        return keep

    def retain(self, keep: list[ActorRef], timeout: float = 5.0) -> list[ActorRef]:
        """After a formation around ``keep`` failed (:meth:`form_group` raised): the members of ``keep`` that
        still answer a heartbeat within ``timeout`` s stay, with their processes and states, as the active
        group; every other member of the failed group (e.g. a replacement on a node that just died) is
        released. Returns those kept, in ``keep``'s order."""
        candidates = [a for a in keep if any(a is m for m in self.group)]
        pings = [self.engine.call(a, "ping") for a in candidates]
        self.engine.wait(pings, timeout=timeout, num=len(pings))
        alive = [a for a, f in zip(candidates, pings) if self.engine.outcome(f, timeout=0).ok]
        for a in self.group:
            if not any(a is k for k in alive):
                self.pool.release(a)
        if self.group_sched is not None:
            self.engine.kill(self.group_sched)
        self.group, self.group_sched = list(alive), None
        return alive

    def _retire(self, actors: list[ActorRef], sched: ActorRef | None) -> None:
        for a in actors:
            self.pool.release(a)
        if sched is not None:
            self.engine.kill(sched)

    def retire_group(self) -> None:
        """Release every member of the active group (and its scheduler)."""
        self._retire(self.group, self.group_sched)
        self.group, self.group_sched = [], None
