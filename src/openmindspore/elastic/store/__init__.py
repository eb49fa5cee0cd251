"""Snapshot stores of elastic runs (``--snapshot-store holder|ray|yrds``): where in-memory snapshots live.

Owns no state; :func:`open_store` builds the run's store. ``holder`` (default): a process outside the
driver keeps the newest snapshots in shared memory, written there by the workers (survives the driver);
``ray``: engine objects owned by the driver (lost with it); ``yrds``: openYuanrong's data system
(:mod:`~openmindspore.elastic.store.yrds`, optional).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openmindspore.elastic.store.base import STORE_KINDS, Capabilities, SnapshotRecord, SnapshotStore, StoreKind

if TYPE_CHECKING:
    from openmindspore.engine import Engine

__all__ = ["STORE_KINDS", "Capabilities", "SnapshotRecord", "SnapshotStore", "StoreKind", "open_store"]


def open_store(kind: StoreKind, engine: Engine, run_dir: str | Path, keep: int = 2) -> SnapshotStore:
    """The run's snapshot store of kind ``kind`` (a holder left by an earlier driver of the run is reused)."""
    if kind == "ray":
        from openmindspore.elastic.store.ray_store import RayStore

        return RayStore(engine, keep)
    if kind == "yrds":
        from openmindspore.elastic.store.yrds import YrdsStore

        return YrdsStore(run_dir, engine, keep)
    from openmindspore.elastic.store.holder_store import HolderStore

    return HolderStore(run_dir, engine, keep)
