"""``--snapshot-store holder`` (the default): snapshots in shared memory, held by a process outside the driver.

Owns the driver's view of its holder: the process (when this driver started it), the client, and how many
times the holder was replaced; the record of the snapshots is kept by
:class:`~openmindspore.elastic.store.recorded.RecordedStore`. The bytes go from the worker straight into the holder's
shared memory (:class:`~openmindspore.elastic.store.holder.HolderTarget`); the driver only records
(step, SHA-256) and reads a snapshot back, verified, when it needs one (a recovery, a disk checkpoint).

A holder that dies while training goes on is replaced at the next snapshot (a warning; its snapshots are
gone, the survivors' state is not). A driver that dies leaves the holder running: ``--resume`` attaches
to it (:mod:`~openmindspore.elastic.store.resume`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmindspore.elastic.store.base import Capabilities, SnapshotRecord, StoreKind
from openmindspore.elastic.store.blob import read_state
from openmindspore.elastic.store.holder import HolderClient, find_holder, remove_shm, start_holder
from openmindspore.elastic.store.recorded import RecordedStore

if TYPE_CHECKING:
    import subprocess

    from openmindspore.engine import Engine
    from openmindspore.train.state import TrainState

__all__ = ["HolderStore"]

log = logging.getLogger(__name__)


class HolderStore(RecordedStore):
    """The driver's side of a run's snapshot holder (see the module docstring)."""

    name: StoreKind = "holder"
    capabilities = Capabilities(outlives_driver=True, shared_memory=True, spills=True, verified=True)

    def __init__(self, run_dir: str | Path, engine: Engine | None = None, keep: int = 2) -> None:
        super().__init__(engine, keep)
        self.run_dir = Path(run_dir)
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        found = find_holder(self.run_dir)
        self.attached = found is not None  # a holder left by an earlier driver of this run
        if found is not None:
            self.client: HolderClient = found
            import os

            entries = self.client.request("attach", pid=os.getpid())
            held = self.client.request("list")["entries"] if entries.get("ok") else {}
            self.records = {int(s): SnapshotRecord(int(s), e["sha256"], int(e["nbytes"])) for s, e in held.items()}
        else:
            remove_shm(self.run_dir)  # a dead holder's files
            self.proc, self.client = start_holder(self.run_dir, keep + 1)

    # ------------------------------------------------------------- writing
    def request(self, step: int) -> tuple[str, tuple[Any, ...]]:
        return "snapshot_to", (step, self.client.target())

    def _read(self, step: int, rec: SnapshotRecord | None) -> TrainState | None:
        if rec is None:
            return None
        try:
            held = self.client.request("get", step=step)
        except (OSError, ValueError):
            return None
        if not held.get("ok") or held.get("sha256") != rec.sha256:
            return None
        return read_state(held["path"], rec.sha256)

    # ----------------------------------------------------------- lifetime
    def _forget(self, op: str, step: int, steps: list[int]) -> None:
        self._tell(op, step=step)

    def _tell(self, op: str, **args: Any) -> None:
        try:
            self.client.request(op, **args)
        except (OSError, ValueError) as e:
            log.debug("snapshot holder %s: %s", op, e)

    def alive(self) -> bool:
        return self.proc.poll() is None if self.proc is not None else self.client.alive()

    def check(self) -> str | None:
        if self.alive():
            return None
        old = self.client.pid
        self.pending.clear()
        self.records.clear()
        remove_shm(self.run_dir)
        self.proc, self.client = start_holder(self.run_dir, self.keep + 1)
        self.restarts += 1
        return (
            f"the snapshot holder (pid {old}) is gone; started a new one (pid {self.client.pid}). Its snapshots "
            "are lost, the workers' state is not: the next snapshot goes to the new holder"
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "pid": self.client.pid, "restarts": self.restarts, "attached": self.attached}

    def close(self, completed: bool) -> None:
        """Stop the holder (``completed``: its snapshots and spills go; otherwise it spills the newest first)."""
        try:
            self.client.request("close", completed=completed)
        except (OSError, ValueError) as e:
            log.debug("snapshot holder close: %s", e)
        deadline = time.time() + 30
        while time.time() < deadline and self.alive():
            time.sleep(0.02)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        remove_shm(self.run_dir)  # a snapshot that was still being written when the holder closed
        self.pending.clear()
        self.records.clear()
