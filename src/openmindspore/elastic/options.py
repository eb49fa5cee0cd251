"""Options of an elastic run: what the user asked for (:class:`ElasticOptions`, ``None`` = decide for me)
and what the run uses (:class:`ResolvedOptions`: every such value decided once, for one global batch).

Owns no state beyond these immutable values. Both are frozen dataclasses validated on construction:
every problem at once (one :class:`~openmindspore.validation.ConfigErrors`), each naming the CLI flag,
the value, what was expected and the fix. :meth:`ElasticOptions.resolve` adds the checks that concern the
run as a whole (the world size must divide the global batch, faults must hit ranks in the group) and
returns a new object; nothing here ever changes itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from openmindspore.elastic.faults import Fault
from openmindspore.elastic.messages import CommBackend
from openmindspore.elastic.store.base import STORE_KINDS, StoreKind
from openmindspore.engine.yr_engine import cluster_address
from openmindspore.errors import ConfigError
from openmindspore.validation import ConfigErrors, did_you_mean

__all__ = [
    "COMM_BACKENDS",
    "DEFAULT_BUCKET_MB",
    "ElasticOptions",
    "EngineName",
    "Placement",
    "ResolvedOptions",
    "valid_world_sizes",
]

Placement = Literal["PACK", "SPREAD"]  # placement-group strategy: workers on few nodes, or spread out
EngineName = Literal["ray", "yuanrong"]
COMM_BACKENDS: tuple[CommBackend, ...] = get_args(CommBackend)  # shm first: the default (~50x MCCL here)
DEFAULT_BUCKET_MB = 1.0  # bucket = shm piece: 1-2 MiB stay in cache, ~1.7x faster than 32 (docs/benchmarks.md)
SNAPSHOT_BUDGET = 0.05  # --snapshot-every auto: the state copy may cost up to this share of the step time


def valid_world_sizes(global_batch: int, max_workers: int) -> list[int]:
    """World sizes that split the global batch evenly (every rank gets the same per-worker batch)."""
    return [n for n in range(1, max_workers + 1) if global_batch % n == 0]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class ElasticOptions:
    """An elastic run as asked for (CLI flags in brackets). ``None`` means auto: ``min_workers`` 1,
    ``spares`` = ``workers``, ``comm`` shm on the embedded cluster and tcp with an ``address``, ``threads``
    the cores divided by the workers. ``faults`` (a list is taken as a tuple) are injected for tests."""

    workers: int = 2
    min_workers: int | None = None
    spares: int | None = None  # warm processes beyond the group, for fast replacement
    address: str | None = None  # a running cluster to join (default: an embedded one)
    snapshot_every: int | None = None  # None: auto (see snapshot_period)
    checkpoint_every: int | None = None  # None: the training config's
    checkpoint_secs: float | None = None
    hang_timeout: float = 10.0
    max_restarts: int = 10
    rejoin_wait: float = 30.0
    placement: Placement = "PACK"
    engine: EngineName = "ray"
    threads: int | None = None
    faults: tuple[Fault, ...] = ()
    comm: CommBackend | None = None  # gradient all-reduce: shm (one node) | tcp (nodes; both rebuildable) | mccl
    bucket_mb: float = DEFAULT_BUCKET_MB  # all-reduce piece size, MiB (shm)
    keep_survivors: bool = True  # rebuild the group around live workers (shm) instead of replacing them
    pin: bool = True  # embedded cluster: pin each active worker to its own cores (rank r: cores r*threads..)
    overlap: bool = False  # shm: update parameters while later gradient buckets are summed (measured: slower
    # with one core per worker, see docs/benchmarks.md "Scaling")
    shard_optimizer: bool = True  # shm: ZeRO-1, each worker updates its share (openmindspore.elastic.zero)
    snapshot_store: StoreKind = "holder"  # where in-memory snapshots live (openmindspore.elastic.store)
    snapshot_ab: int | None = None  # benchmark: blocks of this many steps alternate without / with snapshots

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))  # normalise once; never changed after
        problems = self._problems()
        if problems:
            raise ConfigErrors("elastic options", problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ElasticOptions:
        """From a mapping (e.g. a run's ``elastic.json``); an unknown key is a problem with a did-you-mean."""
        known = [f.name for f in fields(ElasticOptions)] + ["spares_auto"]
        unknown = [
            ConfigError(k, data[k], "a known field name", did_you_mean(k, known) or f"valid fields: {', '.join(known)}")
            for k in data
            if k not in known
        ]
        if unknown:
            raise ConfigErrors("elastic options", unknown)
        faults = [f if isinstance(f, Fault) else Fault(**f) for f in data.get("faults", ())]
        data = dict(data)
        if data.pop("spares_auto", False):  # resolved from auto: fitted again to the cluster it runs on
            data["spares"] = None
        return cls(**{**data, "faults": tuple(faults)})

    @property
    def effective_comm(self) -> CommBackend:
        """``comm``, or its default: shm on one node, tcp when joining a cluster (its workers may span nodes:
        shared memory within a node, TCP between nodes; ~10x MCCL's bandwidth, survivors kept)."""
        if self.comm is not None:
            return self.comm
        return "shm" if self.address is None else "tcp"

    def _problems(self) -> list[ConfigError]:
        bad: list[ConfigError] = []

        def check(ok: bool, flag: str, value: object, expected: str, fix: str = "") -> None:
            if not ok:
                bad.append(ConfigError(flag, value, expected, fix))

        w = self.workers
        check(_is_int(w) and w >= 1, "--workers", w, "an integer >= 1")
        w = w if _is_int(w) else 1
        m, s = self.min_workers, self.spares
        check(m is None or (_is_int(m) and 1 <= m <= w), "--min-workers", m, f"1 <= min-workers <= workers={w}")
        check(s is None or (_is_int(s) and s >= 0), "--spares", s, "an integer >= 0")
        k = self.snapshot_every
        check(k is None or (_is_int(k) and k >= 1), "--snapshot-every", k, "an integer >= 1, or auto")
        k = self.snapshot_ab
        check(k is None or (_is_int(k) and k >= 2), "--snapshot-ab", k, "an integer >= 2 (steps per block)")
        k = self.checkpoint_every
        check(k is None or (_is_int(k) and k >= 1), "--checkpoint-every", k, "an integer >= 1")
        t = self.checkpoint_secs
        check(t is None or (_is_number(t) and t > 0), "--checkpoint-secs", t, "seconds > 0")
        t, k = self.hang_timeout, self.max_restarts
        check(_is_number(t) and t > 0, "--hang-timeout", t, "seconds > 0")
        check(_is_int(k) and k >= 0, "--max-restarts", k, "an integer >= 0")
        t = self.rejoin_wait
        check(_is_number(t) and t >= 0, "--rejoin-wait", t, "seconds >= 0")
        check(
            self.placement in get_args(Placement),
            "--placement",
            self.placement,
            "PACK or SPREAD",
            did_you_mean(str(self.placement), get_args(Placement)),
        )
        check(
            self.engine in get_args(EngineName),
            "--engine",
            self.engine,
            f"one of {list(get_args(EngineName))}",
            did_you_mean(str(self.engine), get_args(EngineName)),
        )
        check(
            self.engine != "yuanrong" or cluster_address(self.address) is not None,
            "--engine",
            "yuanrong without a cluster address",
            "an openYuanrong cluster (--address HOST:PORT or YR_SERVER_ADDRESS) for multi-worker training",
            "openYuanrong's local mode runs instances as threads of this process, while MindSpore worker groups "
            "need processes: use --engine ray, or --address of an openYuanrong cluster",
        )
        check(
            self.comm is None or self.comm in COMM_BACKENDS,
            "--comm",
            self.comm,
            f"one of {list(COMM_BACKENDS)}",
            did_you_mean(str(self.comm), COMM_BACKENDS)
            or "shm for one node, tcp across nodes (both fast, survivors kept), mccl for MindSpore's collectives",
        )
        check(
            not self.overlap or self.effective_comm != "mccl",
            "--overlap",
            f"with --comm {self.effective_comm}",
            "--comm shm (MCCL's all-reduce runs inside MindSpore, asynchronously already)",
            "drop --overlap or use --comm shm",
        )
        check(
            _is_number(self.bucket_mb) and 0.004 <= self.bucket_mb <= 4096,
            "--bucket-mb",
            self.bucket_mb,
            "a size in MiB between 0.004 and 4096",
            f"the measured default is {DEFAULT_BUCKET_MB}",
        )
        check(
            self.snapshot_store in STORE_KINDS,
            "--snapshot-store",
            self.snapshot_store,
            f"one of {list(STORE_KINDS)}",
            did_you_mean(str(self.snapshot_store), STORE_KINDS) or "holder (default) survives the driver",
        )
        t = self.threads
        check(
            t is None or (_is_int(t) and t >= 1),
            "--threads",
            t,
            "an integer >= 1 (CPU threads per worker)",
            "omit it to use cores // workers",
        )
        return bad

    def resolve(self, global_batch: int) -> ResolvedOptions:
        """The run's options for a global batch of ``global_batch``: every auto value decided (see the class
        docstring; the optimizer is sharded only with shm and without ``overlap``). Checks what concerns the
        run as a whole, all at once: the world size divides the batch, and each fault's rank is in the group
        (checked here, not on construction: a resumed run drops its past faults first). ``self`` is
        unchanged; resolving resolved options gives the same options."""
        valid = valid_world_sizes(global_batch, max(self.workers, 8))
        bad = [
            ConfigError(f"--{f.kind}-worker-at", f"{f.step}:{f.rank}", f"a rank < workers={self.workers}")
            for f in self.faults
            if f.rank >= self.workers
        ]
        if self.workers not in valid:
            bad.insert(
                0,
                ConfigError(
                    "--workers",
                    self.workers,
                    f"a world size dividing batch_size={global_batch}",
                    f"choose workers in {valid} or change batch_size",
                ),
            )
        if bad:
            raise ConfigErrors("elastic options", bad)
        comm = self.effective_comm
        decided = {f.name: getattr(self, f.name) for f in fields(ElasticOptions)}
        decided.update(
            min_workers=1 if self.min_workers is None else self.min_workers,
            spares=self.workers if self.spares is None else self.spares,
            spares_auto=self.spares is None or getattr(self, "spares_auto", False),
            comm=comm,
            # a full update (each worker updates everything) when overlapped, or with MCCL
            # (tcp: sharded only while the group is on one node; see Worker.connect)
            shard_optimizer=self.shard_optimizer and comm != "mccl" and not self.overlap,
            threads=max(1, (os.cpu_count() or 1) // self.workers) if self.threads is None else self.threads,
        )
        return ResolvedOptions(**decided)

    def validate(self, global_batch: int) -> ResolvedOptions:
        """:meth:`resolve` under its former name (it no longer changes ``self``)."""
        return self.resolve(global_batch)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [asdict(f) for f in self.faults]
        return d


@dataclass(frozen=True)
class ResolvedOptions(ElasticOptions):
    """The options a run uses: :class:`ElasticOptions` with every auto value decided (made by
    :meth:`ElasticOptions.resolve`)."""

    min_workers: int = field(kw_only=True)
    spares: int = field(kw_only=True)
    comm: CommBackend = field(kw_only=True)
    threads: int = field(kw_only=True)
    spares_auto: bool = field(default=False, kw_only=True)  # spares were not given: fit them to the free CPUs

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`ElasticOptions.to_dict`; ``spares_auto`` only when set (a run's ``elastic.json``)."""
        d = super().to_dict()
        if not d["spares_auto"]:
            del d["spares_auto"]
        return d

    def fit_spares(self, free_cpus: float, total_cpus: float, global_batch: int) -> ResolvedOptions:
        """These options on a cluster with ``free_cpus`` of ``total_cpus`` CPUs free (one per process slot):
        auto spares shrink to the CPUs left beside the workers (``spares_auto`` stays set: the next cluster
        may have more). Raises one :class:`~openmindspore.errors.ConfigError` naming the CPUs needed and free
        when the workers, or the workers and explicit ``--spares``, do not fit."""
        free, total = int(free_cpus + 1e-6), int(total_cpus + 1e-6)
        held = f"{free} of {total} CPUs free" + (" (other jobs hold the rest)" if free < total else "")
        if self.workers > free:
            fits = valid_world_sizes(global_batch, free)
            raise ConfigError(
                "--workers",
                self.workers,
                f"at most the cluster's free CPUs: {self.workers} workers need {self.workers} CPUs, {held}",
                (f"choose workers in {fits}" if fits else "free some CPUs")
                + " or add CPUs (ray start --num-cpus N on more nodes)",
            )
        if self.workers + self.spares <= free:
            return self
        if not self.spares_auto:
            raise ConfigError(
                "--spares",
                self.spares,
                f"workers + spares <= the cluster's free CPUs: {self.workers + self.spares} needed, {held}",
                f"use --spares {free - self.workers} or omit --spares to fit them",
            )
        return replace(self, spares=free - self.workers)

    @property
    def rebuildable(self) -> bool:
        """Survivors can rebuild their group in-process (shm, tcp); MCCL groups are replaced whole."""
        return self.comm != "mccl"

    @property
    def keeps_survivors(self) -> bool:
        """A failure keeps the live workers and replaces only the failed ones."""
        return self.rebuildable and self.keep_survivors

    def snapshot_period(self, copy_s: float, step_s: float | None, rebuildable: bool) -> int:
        """Steps between in-memory snapshots. ``auto``: every step, unless a snapshot (``copy_s``: what one
        costs the training, measured by the driver, or the workers' estimate) costs more than
        ``SNAPSHOT_BUDGET`` of a step (``step_s``, None until measured); then the smallest period that keeps
        it within. Always every step without a rebuildable backend: MCCL survivors blocked in the
        all-reduce may not export their own state."""
        if self.snapshot_every is not None:
            return self.snapshot_every
        if not rebuildable or not step_s:
            return 1
        return max(1, math.ceil(copy_s / (SNAPSHOT_BUDGET * step_s)))
