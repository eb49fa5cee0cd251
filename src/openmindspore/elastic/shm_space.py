"""Start-up check of ``/dev/shm`` for the shared-memory collective: fail in one line, before any process
starts, when the node's shared memory cannot hold what the group will put there (containers default to
64 MB: ``docker run --shm-size``, Kubernetes an ``emptyDir`` with ``medium: Memory``).

Owns no state: :func:`shm_bytes_needed` estimates, :func:`check_shm_space` compares with the free space.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from openmindspore.elastic.options import ResolvedOptions
from openmindspore.elastic.zero import RING
from openmindspore.errors import ConfigError

__all__ = ["SHM_DIR", "check_shm_space", "shm_bytes_needed"]

SHM_DIR = Path("/dev/shm")
_REBUILD_FACTOR = 2  # a rebuilt group's segments exist beside the old group's (a dead rank's shard stays readable)


def shm_bytes_needed(n_params: int, slots: int, opts: ResolvedOptions) -> int:
    """Bytes of shared memory the group of ``opts.workers`` ranks uses on one node for a model of ``n_params``
    float32 parameters and an optimizer with ``slots`` state arrays per parameter: each rank's inbox (one
    all-reduce piece, ``--bucket-mb``) and outbox (its share of a piece), plus, with the sharded optimizer,
    the ring of ``RING`` copies of the optimizer state; twice that, for the segments of a rebuilt group."""
    chunk = int(opts.bucket_mb * (1 << 20))
    pieces = opts.workers * (chunk + -(-chunk // opts.workers))
    state = 4 * n_params * slots * RING if opts.shard_optimizer else 0
    return _REBUILD_FACTOR * (pieces + state)


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def check_shm_space(n_params: int, slots: int, opts: ResolvedOptions, shm_dir: Path = SHM_DIR) -> None:
    """Raise one :class:`ConfigError` naming the size needed and the fix when ``opts`` use the shared-memory
    backend (shm, or tcp within a node) and ``shm_dir`` has too little free space; nothing to check otherwise."""
    if opts.comm not in ("shm", "tcp") or not shm_dir.is_dir():  # tcp shares memory within a node too
        return
    need, free = shm_bytes_needed(n_params, slots, opts), shutil.disk_usage(shm_dir).free
    if need <= free:
        return
    raise ConfigError(
        str(shm_dir),
        f"{_mib(free)} free",
        f"at least {_mib(need)} of shared memory for {opts.workers} workers (model {_mib(4 * n_params)} x "
        f"{slots} optimizer slots x {RING} copies, --bucket-mb {opts.bucket_mb:g})",
        f"give the container more (docker run --shm-size={-(-need // (1 << 30))}g; Kubernetes: an emptyDir "
        "volume with medium: Memory mounted at /dev/shm), or use a smaller --bucket-mb, --no-shard-optimizer "
        "or --comm mccl",
    )
