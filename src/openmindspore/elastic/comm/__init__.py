"""Collective communication for elastic data-parallel training: one seam, several backends.

``shm`` (default): shared memory within a node, rank-ordered deterministic reduction, failure-aware
barriers over sockets, rebuildable in a live process. ``tcp``: the same protocol for a group spanning
nodes (shared memory within each node, TCP between them; default with ``--address``). ``mccl``:
MindSpore's own collectives (not rebuildable: processes are replaced). See docs/distributed.md, "Communication".
"""

from openmindspore.elastic.comm._tcp import Endpoint
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
from openmindspore.elastic.comm.tcp import TcpCollective

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
    "TcpCollective",
    "Endpoint",
    "DEFAULT_CHUNK_BYTES",
]

BACKENDS = ("shm", "tcp", "mccl")
DEFAULT_BACKEND = "shm"  # measured ~30-60x MCCL's all-reduce bandwidth at 42 MB here (docs/benchmarks.md)
