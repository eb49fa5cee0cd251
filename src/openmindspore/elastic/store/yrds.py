"""``--snapshot-store yrds``: snapshots in openYuanrong's data system (the optional ``yrds`` extra).

Owns the driver's connection to a data-system worker (``OMS_YRDS_ADDRESS``, default ``127.0.0.1:31501``;
started by the user, e.g. ``dscli start -w --worker_address 127.0.0.1:31501 --metastore_address
127.0.0.1:32379 --start_metastore_service true``) and, through :class:`RecordedStore`, the record of the
run's snapshots. A worker writes the state's bytes itself under ``oms-snap-<run id>-<step>`` (its SHA-256
under the same key + ``:sha``) through the SDK (shared memory with its local data-system worker); the
driver records (step, SHA-256) and reads back verified. The data outlive the driver (the data system is
a service of its own): ``--resume`` looks for the steps after the newest checkpoint
(:func:`candidates`). A run that completes deletes its keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmindspore.elastic.messages import _Message
from openmindspore.elastic.store.base import Capabilities, SnapshotRecord, StoreKind
from openmindspore.elastic.store.holder import run_id
from openmindspore.elastic.store.recorded import RecordedStore

if TYPE_CHECKING:
    from openmindspore.engine import Engine
    from openmindspore.train.state import TrainState

__all__ = ["YrdsStore", "YrdsTarget", "candidates", "yrds_address"]


def yrds_address() -> tuple[str, int]:
    host, _, port = os.environ.get("OMS_YRDS_ADDRESS", "127.0.0.1:31501").rpartition(":")
    return host or "127.0.0.1", int(port)


def _client(host: str, port: int) -> Any:
    from openmindspore.engine.yr_datasystem import kv_client

    return kv_client(host, port)


def _key(rid: str, step: int) -> str:
    return f"oms-snap-{rid}-{step:08d}"


def _fetch(client: Any, rid: str, step: int, sha256: str | None) -> TrainState | None:
    """The verified state of ``step`` (``sha256`` None: the one stored beside it), or None."""
    from openmindspore.train.state import TrainState

    try:
        blob, sha = client.get([_key(rid, step), _key(rid, step) + ":sha"])
    except Exception:  # noqa: BLE001 - a missing key raises in the SDK
        return None
    blob = bytes(blob)
    want = sha256 or bytes(sha).decode()
    return TrainState.from_bytes(blob) if hashlib.sha256(blob).hexdigest() == want else None


@dataclass(frozen=True, slots=True)
class YrdsTarget(_Message):
    """Where a worker writes a snapshot: the data-system worker at ``host:port``, keys of run ``rid``."""

    host: str
    port: int
    rid: str

    def write(self, step: int, state: TrainState) -> SnapshotRecord:
        blob = state.to_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        client = _client(self.host, self.port)
        client.set(_key(self.rid, step), blob)
        client.set(_key(self.rid, step) + ":sha", sha.encode())
        return SnapshotRecord(step, sha, len(blob))


class YrdsStore(RecordedStore):
    """Snapshots in the openYuanrong data system (see the module docstring)."""

    name: StoreKind = "yrds"
    capabilities = Capabilities(outlives_driver=True, shared_memory=True, spills=False, verified=True)

    def __init__(self, run_dir: str | Path, engine: Engine | None = None, keep: int = 2) -> None:
        super().__init__(engine, keep)
        self.rid = run_id(run_dir)
        self.host, self.port = yrds_address()
        self.client = _client(self.host, self.port)
        self._late: list[int] = []  # dropped from the record, deleted at the next drop

    def request(self, step: int) -> tuple[str, tuple[Any, ...]]:
        return "snapshot_to", (step, YrdsTarget(self.host, self.port, self.rid))

    def _dropped(self, steps: list[int]) -> None:
        self._delete(self._late)  # one behind: a checkpoint may still be reading the newest dropped
        self._late = steps

    def _read(self, step: int, rec: SnapshotRecord | None) -> TrainState | None:
        return None if rec is None else _fetch(self.client, self.rid, step, rec.sha256)

    def _forget(self, op: str, step: int, steps: list[int]) -> None:
        self._delete(steps)

    def _delete(self, steps: list[int]) -> None:
        keys = [k for s in steps for k in (_key(self.rid, s), _key(self.rid, s) + ":sha")]
        if keys:
            try:
                self.client.delete(keys)
            except Exception:  # noqa: BLE001 - a snapshot still being written has no key yet
                pass

    def check(self) -> str | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "address": f"{self.host}:{self.port}"}

    def close(self, completed: bool) -> None:
        if completed:
            self._delete(self.steps() + self._late)
        self.pending.clear()
        self.records.clear()


def candidates(run_dir: Path, after: int, upto: int) -> list[tuple[int, str, Callable[[], TrainState | None]]]:
    """The run's snapshots in the data system for steps in ``(after, upto]`` (for ``--resume``)."""
    rid, (host, port) = run_id(run_dir), yrds_address()
    client = _client(host, port)
    steps = list(range(max(0, after + 1), upto + 1))
    if not steps:
        return []
    found = client.exist([_key(rid, s) + ":sha" for s in steps])
    return [(s, "yrds", partial(_fetch, client, rid, s, None)) for s, ok in zip(steps, found) if ok]
