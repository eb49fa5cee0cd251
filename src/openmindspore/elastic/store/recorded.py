"""What the stores whose workers write the snapshot themselves share: the driver's record of it.

Owns the driver's record of a run's snapshots in such a store: the steps requested (step -> the worker's
answer still to come, an engine future) and confirmed (step -> :class:`SnapshotRecord`: SHA-256 and size),
the newest ``keep``, and the newest confirmed one while every newer one is still pending. A subclass says
how a recorded snapshot is read back (``_read``, verified) and how snapshots are dropped from the store
(``_forget``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from openmindspore.elastic.store.base import SnapshotRecord, newest_readable, retained

if TYPE_CHECKING:
    from openmindspore.engine import Engine
    from openmindspore.train.state import TrainState

__all__ = ["RecordedStore"]

log = logging.getLogger(__name__)


class RecordedStore:
    """The shared part of :class:`~openmindspore.elastic.store.holder_store.HolderStore` and
    :class:`~openmindspore.elastic.store.yrds.YrdsStore` (see the module docstring)."""

    def __init__(self, engine: Engine | None, keep: int) -> None:
        self.engine, self.keep = engine, keep
        self.pending: dict[int, Any] = {}  # step -> the worker's answer still to come (an engine future)
        self.records: dict[int, SnapshotRecord] = {}

    def record(self, step: int, answer: Any) -> None:
        self._dropped(self._record(step, answer))

    def _dropped(self, steps: list[int]) -> None:
        """The oldest ``steps`` are no longer recorded (the store may free them)."""

    def _record(self, step: int, answer: Any) -> list[int]:
        self.records.pop(step, None)
        if isinstance(answer, SnapshotRecord):
            self.records[step] = answer
        else:
            self.pending[step] = answer
        for s in list(self.pending):  # the answers already in (a failed one is forgotten)
            self._resolve(s, timeout=0)
        kept = retained(self.steps(), self.records, self.keep)
        old = [s for s in self.steps() if s not in kept]
        for s in old:
            self.pending.pop(s, None)
            self.records.pop(s, None)
        return old

    def _resolve(self, step: int, timeout: float) -> SnapshotRecord | None:
        if step in self.records:
            return self.records[step]
        fut = self.pending.get(step)
        if fut is None or self.engine is None:
            return None
        out = self.engine.outcome(fut, timeout=timeout)
        if out.status == "pending":
            return None
        self.pending.pop(step, None)
        if not out.ok:
            # a worker that died took its snapshot with it: the recovery reports the death, so not a warning
            (log.info if out.status == "dead" else log.warning)(
                "snapshot of step %d was not stored: %s", step, out.error
            )
            return None
        self.records[step] = out.value
        return self.records[step]

    def wait(self, step: int, timeout: float) -> None:
        self._resolve(step, timeout)

    def steps(self) -> list[int]:
        return sorted({*self.pending, *self.records})

    # ------------------------------------------------------------- reading
    def latest(self, newer_than: int = -1, timeout: float = 10.0) -> tuple[int, TrainState] | None:
        return newest_readable(self, newer_than, timeout)

    def get(self, step: int, timeout: float = 300.0) -> TrainState | None:
        return self._read(step, self._resolve(step, timeout))

    def reader(self, step: int) -> Callable[[float], TrainState | None]:
        answer = self.records.get(step) or self.pending.get(step)

        def read(timeout: float) -> TrainState | None:
            if isinstance(answer, SnapshotRecord) or answer is None:
                return self._read(step, answer)
            out = self.engine.outcome(answer, timeout=timeout) if self.engine is not None else None
            return self._read(step, out.value if out is not None and out.ok else None)

        return read

    def _read(self, step: int, rec: SnapshotRecord | None) -> TrainState | None:
        raise NotImplementedError

    def _forget(self, op: str, step: int, steps: list[int]) -> None:
        """Drop ``steps`` from the store: ``op`` "drop" (of ``step``) or "forget_after" (the steps after ``step``)."""
        raise NotImplementedError

    def drop(self, step: int) -> None:
        self.pending.pop(step, None)
        self.records.pop(step, None)
        self._forget("drop", step, [step])

    def forget_after(self, step: int) -> None:
        gone = [s for s in self.steps() if s > step]
        self.pending = {s: f for s, f in self.pending.items() if s <= step}
        self.records = {s: r for s, r in self.records.items() if s <= step}
        self._forget("forget_after", step, gone)
