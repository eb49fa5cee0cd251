"""Collective communication for elastic data-parallel training: one seam, several backends.

``shm`` (default): shared memory within a node, rank-ordered deterministic reduction, failure-aware
barriers over sockets, rebuildable in a live process. ``mccl``: MindSpore's own collectives (not
rebuildable: processes are replaced). See docs/distributed.md, "Communication".
"""

from openmindspore.elastic.comm.base import (
    REDUCE_OPS,
    SUPPORTED_DTYPES,
    Collective,
    CommAbortedError,
    CommError,
    CommTimeoutError,
    PeerLostError,
    check_buffer,
    reference_allreduce,
)
from openmindspore.elastic.comm.mccl import MCCLCollective
from openmindspore.elastic.comm.shm import DEFAULT_CHUNK_BYTES, ShmCollective

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Collective",
    "CommError",
    "PeerLostError",
    "CommTimeoutError",
    "CommAbortedError",
    "REDUCE_OPS",
    "SUPPORTED_DTYPES",
    "check_buffer",
    "reference_allreduce",
    "ShmCollective",
    "MCCLCollective",
    "DEFAULT_CHUNK_BYTES",
]

BACKENDS = ("shm", "mccl")
DEFAULT_BACKEND = "shm"  # measured ~30-60x MCCL's all-reduce bandwidth at 42 MB here (docs/benchmarks.md)
