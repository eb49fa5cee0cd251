"""Finding, starting and talking to a run's snapshot holder process, and the worker's way of writing to it.

Owns no state beyond one holder's address: :class:`HolderClient` sends one JSON request per connection
(the protocol of :mod:`~openmindspore.elastic.store._holder_main`); :func:`start_holder` starts the holder
as a plain process in its own session (it outlives the driver), :func:`find_holder` finds a live one again
from the run directory's ``holder.json``; :class:`HolderTarget` is what a worker gets with a snapshot
request: it writes the state into the holder's shared memory itself and announces it, so the bytes never
pass through the driver.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmindspore.elastic.messages import _Message
from openmindspore.elastic.store._holder_main import free_name, pid_alive
from openmindspore.elastic.store.base import SnapshotRecord
from openmindspore.elastic.store.blob import write_state
from openmindspore.errors import OMSError

if TYPE_CHECKING:
    from openmindspore.train.state import TrainState

__all__ = [
    "HolderClient",
    "HolderTarget",
    "fallback_prefix",
    "find_holder",
    "free_name",
    "start_holder",
    "run_id",
    "shm_prefix",
    "remove_shm",
]

LINGER_S = float(os.environ.get("OMS_HOLDER_LINGER_S", "600"))  # a holder whose driver is gone waits this long
SPILL_SECS = 10.0  # at most one spill to the run directory this often


def run_id(run_dir: str | Path) -> str:
    """The run's name in shared memory: a hash of its directory's absolute path."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def shm_prefix(run_dir: str | Path) -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else os.environ.get("TMPDIR", "/tmp")
    return f"{base}/oms-snap-{run_id(run_dir)}-"


def fallback_prefix(run_dir: str | Path) -> str:
    """Where workers write a snapshot when shared memory is full (the holder's ``fallback``)."""
    return str(Path(run_dir).resolve() / "snapshots" / ".mem-")


def remove_shm(run_dir: str | Path) -> int:
    """Remove every shared-memory file of the run (a holder that died leaves them); returns how many."""
    files = [f for p in (shm_prefix(run_dir), fallback_prefix(run_dir)) for f in glob.glob(glob.escape(p) + "*")]
    for f in files:
        Path(f).unlink(missing_ok=True)
    return len(files)


def _request(host: str, port: int, req: dict[str, Any], timeout: float) -> dict[str, Any]:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(json.dumps(req).encode() + b"\n")
        line = s.makefile("rb").readline()
    if not line:
        raise ConnectionError(f"snapshot holder at {host}:{port} closed the connection")
    out: dict[str, Any] = json.loads(line)
    return out


@dataclass(frozen=True, slots=True)
class HolderTarget(_Message):
    """Where a worker writes a snapshot: files named ``prefix + step`` in shared memory, announced to the
    holder at ``host:port``."""

    host: str
    port: int
    prefix: str
    fallback: str  # the run directory's ``snapshots/.mem-``: used when shared memory is full

    def write(self, step: int, state: TrainState) -> SnapshotRecord:
        path = f"{self.prefix}{step:08d}"
        try:
            sha, nbytes = write_state(state, path, reuse=free_name(self.prefix))
        except OSError:  # /dev/shm full (a container's 64 MB default) or gone: the snapshot goes to disk
            path = f"{self.fallback}{step:08d}"
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            sha, nbytes = write_state(state, path)
        try:
            resp = _request(
                self.host, self.port, {"op": "put", "step": step, "sha256": sha, "nbytes": nbytes, "path": path}, 10.0
            )
        except OSError:
            Path(path).unlink(missing_ok=True)
            raise
        if not resp.get("ok"):
            Path(path).unlink(missing_ok=True)
            raise OMSError(f"the snapshot holder refused step {step}: {resp.get('error')}")
        return SnapshotRecord(step, sha, nbytes)


class HolderClient:
    """Requests to one holder (``info``: its ``holder.json``)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.pid: int = int(info["pid"])

    def request(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        return _request(self.info["host"], int(self.info["port"]), {"op": op, **args}, timeout)

    def target(self) -> HolderTarget:
        info = self.info
        return HolderTarget(info["host"], int(info["port"]), info["prefix"], info.get("fallback", info["prefix"]))

    def alive(self) -> bool:
        return pid_alive(self.pid)


def read_info(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / "holder.json"
    try:
        info: dict[str, Any] = json.loads(p.read_text())
        return info
    except (OSError, ValueError):
        return None


def find_holder(run_dir: str | Path) -> HolderClient | None:
    """The run's live holder (it answers, for this run), else None."""
    info = read_info(run_dir)
    if info is None or info.get("run_id") != run_id(run_dir) or not pid_alive(int(info.get("pid", -1))):
        return None
    client = HolderClient(info)
    try:
        pong = client.request("ping", timeout=5.0)
    except (OSError, ValueError):
        return None
    return client if pong.get("run_id") == info["run_id"] and pong.get("pid") == client.pid else None


def start_holder(
    run_dir: str | Path, keep: int = 2, linger: float | None = None
) -> tuple[subprocess.Popen, HolderClient]:
    """Start a holder for the run in ``run_dir`` (its own session: it outlives this process, the driver)."""
    run_dir = Path(run_dir)
    script = Path(__file__).with_name("_holder_main.py")
    cmd = [
        sys.executable,
        "-s",  # no user site: the script needs the standard library only
        str(script),
        f"--run-dir={run_dir.resolve()}",
        f"--run-id={run_id(run_dir)}",
        f"--prefix={shm_prefix(run_dir)}",
        f"--keep={keep}",
        f"--linger={LINGER_S if linger is None else linger}",
        f"--spill-secs={SPILL_SECS}",
        f"--driver-pid={os.getpid()}",
    ]
    with open(run_dir / "holder.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        info = read_info(run_dir)
        if info is not None and info.get("pid") == proc.pid:
            return proc, HolderClient(info)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise OMSError(f"the snapshot holder did not start (see {run_dir / 'holder.log'})")
