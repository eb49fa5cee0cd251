"""What the driver and its workers hand each other: one typed message per call of
:class:`~openmindspore.elastic.worker.Worker` (arguments and results).

Owns no state: frozen, slotted dataclasses of plain values and numpy arrays, cheap for the engine to
serialise (a step result crosses it every step, on the critical path: see :class:`_Message`). Imports
nothing heavier than numpy, so both sides load it at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from openmindspore.train.state import TrainState

__all__ = [
    "CommBackend",
    "FaultKind",
    "ArmedFault",
    "CommFailure",
    "CommSpec",
    "ConnectResult",
    "ExportedState",
    "Heartbeat",
    "LoadResult",
    "StepResult",
    "SummaryFields",
]


class _Message:
    """Base of the messages: pickles as (class, field values), so rebuilding one is a single constructor call.
    Measured (2 busy cores): a step result's pickle round trip 75 us, 84 us with the default protocol of a
    frozen, slotted dataclass, 67 us as the dict it replaces; a step takes tens of ms."""

    __slots__ = ()

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        names: tuple[str, ...] = self.__slots__  # the dataclass's fields, in order
        return type(self), tuple(getattr(self, name) for name in names)


CommBackend = Literal["shm", "tcp", "mccl"]  # one node (shm) | shm within nodes + TCP between | MindSpore's
FaultKind = Literal["kill", "hang", "preempt"]  # injected as SIGKILL, SIGSTOP, SIGTERM


@dataclass(frozen=True, slots=True)
class CommSpec(_Message):
    """How a worker joins its next group (``Worker.connect``). ``shm``: the shared-memory group ``group``
    (a fresh name per formation), every wait bounded by ``timeout`` s, pieces of ``chunk_bytes``, the
    update overlapped with the exchange (``overlap``) or sharded (``shard``, ZeRO-1). ``mccl``: MindSpore's
    collectives through the scheduler at ``sched`` (host, port); ``timeout`` bounds the wait for a step
    still in progress. ``tcp``: as shm, with ``nodes`` (each rank's engine node id) and ``addrs`` (each
    rank's TCP endpoint, ``Worker.endpoint``); ranks on one node share memory, the others talk TCP (a
    group on one node is an shm group)."""

    backend: CommBackend
    group: str = ""
    timeout: float = 30.0
    chunk_bytes: int = 0
    overlap: bool = False
    shard: bool = False
    sched: tuple[str, int] | None = None
    nodes: tuple[str, ...] = ()
    addrs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectResult(_Message):
    """A worker joined its group as ``rank`` (MindSpore's rank order with MCCL) in ``comm_init_s``;
    ``cores``: the cores its threads are pinned to (None: not pinned)."""

    rank: int
    pid: int
    comm_init_s: float
    host: str
    cores: list[int] | None


@dataclass(frozen=True, slots=True)
class ArmedFault(_Message):
    """A fault still to inject (``Worker.load``): ``index`` into the run's fault list, ``kind`` (kill |
    hang | preempt) into ``rank`` during 1-based global ``step``."""

    index: int
    kind: FaultKind
    step: int
    rank: int


@dataclass(frozen=True, slots=True)
class LoadResult(_Message):
    """A worker holds the group's starting state (at ``step``); ``snapshot_copy_s``: its measured time to
    copy its training state once and hash it (SHA-256): what a snapshot costs at least."""

    rank: int
    step: int
    load_s: float
    snapshot_copy_s: float


@dataclass(frozen=True, slots=True)
class StepResult(_Message):
    """One rank's completed global step: its state is now after ``step`` (1-based count of steps done);
    ``samples``: the global sample ids of its shard of the batch of ``epoch``; ``loss``: its shard's share
    of the mean loss (the ranks' losses sum to the step's). Times in seconds, inside the worker:
    forward+backward, the exchange (incl. waiting for the slowest rank), the optimizer update, keeping the
    state (stash), and the whole call; ``time``: when it finished (epoch seconds)."""

    step: int
    loss: float
    epoch: int
    samples: np.ndarray
    rank: int
    preempted: bool
    compute_s: float
    comm_s: float
    update_s: float
    stash_s: float
    worker_s: float
    compiled: bool
    time: float


@dataclass(frozen=True, slots=True)
class CommFailure(_Message):
    """A step whose collective failed on this (live) rank: nothing was applied, the sampler is rewound and
    the worker is still at ``step``. ``kind`` is the :class:`~openmindspore.elastic.comm.CommError` kind;
    ``lost``: the peers the collective blamed (dead, silent, or empty when unknown)."""

    error: str
    kind: str
    lost: list[int]
    rank: int
    step: int
    time: float


@dataclass(frozen=True, slots=True)
class Heartbeat(_Message):
    """A worker's answer to ``ping`` (from a thread other than the one running steps)."""

    pid: int
    step: int


@dataclass(frozen=True, slots=True)
class ExportedState(_Message):
    """A worker's latest completed state (``Worker.export_state``), after global step ``step``."""

    step: int
    state: TrainState


@dataclass(frozen=True, slots=True)
class SummaryFields(_Message):
    """What the run's summary takes from a worker at the end: test and validation metrics, the parameters'
    SHA-256, and the data position."""

    eval: dict[str, Any]
    val: dict[str, Any]
    params_sha256: str
    epoch: int
    steps: int
    samples_seen: int
