"""The snapshot-store seam: where an elastic run's in-memory snapshots live, and what every store promises.

Owns no state: the :class:`SnapshotStore` protocol the driver's :class:`~openmindspore.elastic.snapshots.Snapshots`
talks to, the :class:`Capabilities` a store declares, the :class:`SnapshotRecord` a worker returns after
writing a snapshot, and the backend names (``--snapshot-store``).

A snapshot is *requested* from a group member (``request(step)``: the worker method and its arguments);
the member's answer is handed to ``record(step, future)``. Reading (``latest``, ``get``) always verifies:
a store returns a state only when it is the one recorded for that step (SHA-256 where the bytes leave the
process that made them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from openmindspore.elastic.messages import _Message

if TYPE_CHECKING:
    from openmindspore.train.state import TrainState

__all__ = [
    "retained",
    "Capabilities",
    "SnapshotRecord",
    "SnapshotStore",
    "SnapshotTarget",
    "StoreKind",
    "STORE_KINDS",
    "newest_readable",
]

StoreKind = Literal["holder", "ray", "yrds"]
STORE_KINDS: tuple[StoreKind, ...] = ("holder", "ray", "yrds")  # holder first: the default


@dataclass(frozen=True)
class Capabilities:
    """What a store guarantees: its snapshots survive the driver's death (``outlives_driver``), live in
    shared memory written by the worker itself (``shared_memory``), go to disk when they leave memory
    (``spills``), and are checked against a SHA-256 when read (``verified``)."""

    outlives_driver: bool
    shared_memory: bool
    spills: bool
    verified: bool


@dataclass(frozen=True, slots=True)
class SnapshotRecord(_Message):
    """A snapshot a worker wrote into a store: the state after ``step``, ``nbytes`` long, with its SHA-256."""

    step: int
    sha256: str
    nbytes: int


class SnapshotTarget(Protocol):
    """What a worker gets with a snapshot request (picklable): writes a state into the store itself."""

    def write(self, step: int, state: TrainState) -> SnapshotRecord: ...


class SnapshotStore(Protocol):
    """An elastic run's snapshot store (see the module docstring); ``keep`` newest snapshots are held."""

    name: StoreKind
    capabilities: Capabilities

    def request(self, step: int) -> tuple[str, tuple[Any, ...]]:
        """The worker method (and its arguments) that puts the state after ``step`` into this store."""
        ...

    def record(self, step: int, answer: Any) -> None:
        """The member's answer to :meth:`request` (an engine future, or the value itself)."""
        ...

    def wait(self, step: int, timeout: float) -> None:
        """Block until the snapshot of ``step`` is in the store (or failed), at most ``timeout`` s."""
        ...

    def steps(self) -> list[int]:
        """Steps recorded (in flight or stored), oldest first."""
        ...

    def latest(self, newer_than: int = -1, timeout: float = 10.0) -> tuple[int, TrainState] | None:
        """The newest verified snapshot after ``newer_than`` (up to ``timeout`` s for each still in flight)."""
        ...

    def get(self, step: int, timeout: float = 300.0) -> TrainState | None:
        """The verified snapshot of ``step``, or None."""
        ...

    def reader(self, step: int) -> Callable[[float], TrainState | None]:
        """Reads the snapshot of ``step`` later (argument: timeout, s), even after the store moved on."""
        ...

    def drop(self, step: int) -> None: ...

    def forget_after(self, step: int) -> None:
        """Drop the snapshots of steps after ``step`` (rolled back)."""
        ...

    def check(self) -> str | None:
        """Before a request: None when the store is usable, else what was wrong and has been repaired."""
        ...

    def describe(self) -> dict[str, Any]:
        """For the run's summary."""
        ...

    def close(self, completed: bool) -> None:
        """The run ended (``completed``: cleanly; the run directory's checkpoint is final). Shared memory is
        released either way; a store that spills keeps the newest snapshot on disk when not completed."""
        ...


class _Readable(Protocol):
    def steps(self) -> list[int]: ...

    def get(self, step: int, timeout: float = 300.0) -> TrainState | None: ...


def newest_readable(store: _Readable, newer_than: int = -1, timeout: float = 10.0) -> tuple[int, TrainState] | None:
    """:meth:`SnapshotStore.latest` from :meth:`~SnapshotStore.steps` and :meth:`~SnapshotStore.get`: the newest
    step after ``newer_than`` whose snapshot reads back verified, with its state."""
    for step in reversed(store.steps()):
        if step <= newer_than:
            break
        state = store.get(step, timeout)
        if state is not None:
            return step, state
    return None


def retained(steps: list[int], stored: Iterable[int], keep: int) -> list[int]:
    """Which of ``steps`` (sorted) a store keeps: the newest ``keep``, and the newest of ``stored`` (those whose
    snapshot is written) while every one of those ``keep`` is still being written (a slow worker may never
    finish it: losing those writers must not leave nothing to recover from)."""
    kept, written = set(steps[-keep:]), set(stored)
    done = [s for s in steps if s in written]
    if done and not kept & set(done):
        kept.add(done[-1])
    return [s for s in steps if s in kept]
