"""Options of an elastic run and fault-injection specs (``--kill-worker-at STEP[:RANK]``)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["ElasticOptions", "Fault", "parse_fault", "valid_world_sizes", "COMM_BACKENDS", "DEFAULT_BUCKET_MB"]

FAULT_KINDS = ("kill", "hang", "preempt")
COMM_BACKENDS = ("shm", "mccl")  # shm first: the default (measured ~50x MCCL's all-reduce bandwidth here)
DEFAULT_BUCKET_MB = 1.0  # bucket = shm piece: 1-2 MiB stay in cache, ~1.7x faster than 32 (docs/benchmarks.md)
SNAPSHOT_BUDGET = 0.05  # --snapshot-every auto: the state copy may cost up to this share of the step time


@dataclass(frozen=True)
class Fault:
    """Inject ``kind`` into ``rank`` during global step ``step`` (1-based: step 5 = the fifth step)."""

    kind: str
    step: int
    rank: int = 0


def parse_fault(kind: str, spec: str) -> Fault:
    flag = f"--{kind}-worker-at"
    try:
        step_s, _, rank_s = str(spec).partition(":")
        step, rank = int(step_s), int(rank_s or 0)
    except ValueError:
        raise ConfigError(flag, spec, "STEP or STEP:RANK with integers, e.g. 5 or 5:1") from None
    if step < 1 or rank < 0:
        raise ConfigError(flag, spec, "STEP >= 1 and RANK >= 0")
    return Fault(kind, step, rank)


def valid_world_sizes(global_batch: int, max_workers: int) -> list[int]:
    """World sizes that split the global batch evenly (every rank gets the same per-worker batch)."""
    return [n for n in range(1, max_workers + 1) if global_batch % n == 0]


@dataclass
class ElasticOptions:
    workers: int = 2
    min_workers: int | None = None
    spares: int | None = None
    address: str | None = None
    snapshot_every: int | None = None  # None: auto (snapshot_period)
    checkpoint_every: int | None = None
    checkpoint_secs: float | None = None
    hang_timeout: float = 10.0
    max_restarts: int = 10
    rejoin_wait: float = 30.0
    placement: str = "PACK"
    engine: str = "ray"
    threads: int | None = None
    faults: list[Fault] = field(default_factory=list)
    comm: str | None = None  # all-reduce backend: shm (one node, rebuildable) | mccl; None: shm, mccl with --address
    bucket_mb: float = DEFAULT_BUCKET_MB  # all-reduce piece size, MiB (shm)
    keep_survivors: bool = True  # rebuild the group around live workers (shm) instead of replacing them
    pin: bool = True  # embedded cluster: pin each active worker to its own cores (rank r: cores r*threads..)
    overlap: bool = False  # shm: update parameters while later gradient buckets are summed (measured: slower
    # with one core per worker, see docs/benchmarks.md "Scaling")
    shard_optimizer: bool = True  # shm: ZeRO-1, each worker updates its share (openmindspore.elastic.zero)

    def validate(self, global_batch: int) -> ElasticOptions:
        if self.workers < 1:
            raise ConfigError("--workers", self.workers, "an integer >= 1")
        valid = valid_world_sizes(global_batch, max(self.workers, 8))
        if self.workers not in valid:
            raise ConfigError(
                "--workers",
                self.workers,
                f"a world size dividing batch_size={global_batch}",
                f"choose workers in {valid} or change batch_size",
            )
        if self.min_workers is None:
            self.min_workers = 1
        if not 1 <= self.min_workers <= self.workers:
            raise ConfigError("--min-workers", self.min_workers, f"1 <= min-workers <= workers={self.workers}")
        if self.spares is None:
            self.spares = self.workers
        if self.spares < 0:
            raise ConfigError("--spares", self.spares, "an integer >= 0")
        if self.snapshot_every is not None and self.snapshot_every < 1:
            raise ConfigError("--snapshot-every", self.snapshot_every, "an integer >= 1, or auto")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ConfigError("--checkpoint-every", self.checkpoint_every, "an integer >= 1")
        if self.hang_timeout <= 0:
            raise ConfigError("--hang-timeout", self.hang_timeout, "seconds > 0")
        if self.rejoin_wait < 0:
            raise ConfigError("--rejoin-wait", self.rejoin_wait, "seconds >= 0")
        if self.placement not in ("PACK", "SPREAD"):
            raise ConfigError("--placement", self.placement, "PACK or SPREAD")
        if self.comm is None:
            self.comm = "shm" if self.address is None else "mccl"
        if self.comm not in COMM_BACKENDS:
            raise ConfigError(
                "--comm",
                self.comm,
                f"one of {list(COMM_BACKENDS)}",
                "shm for one node (fast, survivors kept), mccl for MindSpore's collectives",
            )
        if self.overlap and self.comm != "shm":
            raise ConfigError(
                "--overlap",
                f"with --comm {self.comm}",
                "--comm shm (MCCL's all-reduce runs inside MindSpore, asynchronously already)",
                "drop --overlap or use --comm shm",
            )
        if self.overlap or self.comm != "shm":
            self.shard_optimizer = False  # a full update (each worker updates everything): overlapped, or MCCL
        if not 0.004 <= self.bucket_mb <= 4096:
            raise ConfigError(
                "--bucket-mb",
                self.bucket_mb,
                "a size in MiB between 0.004 and 4096",
                f"the measured default is {DEFAULT_BUCKET_MB}",
            )
        for f in self.faults:
            if f.rank >= self.workers:
                raise ConfigError(f"--{f.kind}-worker-at", f"{f.step}:{f.rank}", f"a rank < workers={self.workers}")
        if self.threads is None:
            self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(
                "--threads", self.threads, "an integer >= 1 (CPU threads per worker)", "omit it to use cores // workers"
            )
        return self

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [asdict(f) for f in self.faults]
        return d
