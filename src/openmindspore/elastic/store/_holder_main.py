"""The snapshot holder process of one elastic run (``--snapshot-store holder``), run as a plain script.

Owns the run's snapshots held in shared memory: the files ``<prefix><step>`` in ``/dev/shm`` (or, when that
is full, ``snapshots/.mem-<step>`` in the run directory) that workers write and then announce here (step,
SHA-256, size), the newest ``keep`` of them (an evicted one's file is kept as ``<prefix>free`` for the next
snapshot to be written into), and the one snapshot spilled to the run directory
(``snapshots/``) when an older one is evicted (asynchronously, at most one spill every ``spill_secs``). It
answers one JSON request per TCP connection on 127.0.0.1 (``put``, ``get``, ``latest``, ``list``, ``drop``,
``forget_after``, ``attach``, ``close``, ``ping``) and writes ``holder.json`` (pid, port, run id, prefix)
into the run directory so that a later driver finds it again.

It outlives the driver that started it (its own session). It exits, removing every shared-memory file of
the run: on ``close`` (the run ended: the files go; ended otherwise: the newest snapshot is spilled first),
when the run directory disappears, or when its driver is gone and no new driver attached within
``linger`` seconds (the newest snapshot is spilled first, so a later ``--resume`` still finds it).

Standard library only: starting it costs tens of milliseconds and it imports neither MindSpore nor the engine.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Holder", "pid_alive"]


def free_name(prefix: str) -> str:
    """The evicted snapshot file the holder keeps for the next snapshot to be written into (at most one)."""
    return f"{prefix}free"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class Holder:
    """The holder's state and its answers (see the module docstring)."""

    def __init__(
        self, run_dir: Path, run_id: str, prefix: str, keep: int, linger: float, driver_pid: int, spill_secs: float
    ) -> None:
        self.run_dir, self.run_id, self.prefix, self.keep = run_dir, run_id, prefix, keep
        self.linger, self.driver_pid, self.spill_secs = linger, driver_pid, spill_secs
        self.spill_dir = run_dir / "snapshots"
        self.fallback = str(self.spill_dir / ".mem-")  # where workers write when shared memory is full
        self.entries: dict[int, dict[str, Any]] = {}  # step -> {sha256, nbytes, path}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._spill: threading.Thread | None = None
        self._last_spill = 0.0
        self._driver_gone: float | None = None
        self.completed = False  # a close request said the run ended cleanly
        for orphan in self._files():  # a previous holder of this run died
            Path(orphan).unlink(missing_ok=True)

    def _files(self) -> list[str]:
        return [f for p in (self.prefix, self.fallback) for f in glob.glob(glob.escape(p) + "*")]

    # ------------------------------------------------------------ requests
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        with self.lock:
            if op == "ping":
                return {"ok": True, "run_id": self.run_id, "pid": os.getpid(), "steps": sorted(self.entries)}
            if op == "put":
                return self._put(int(req["step"]), str(req["sha256"]), int(req["nbytes"]), str(req["path"]))
            if op == "get":
                e = self.entries.get(int(req["step"]))
                return {"ok": e is not None, **(e or {}), "step": int(req["step"])}
            if op == "latest":
                newer = [s for s in self.entries if s > int(req.get("newer_than", -1))]
                if not newer:
                    return {"ok": False}
                return {"ok": True, "step": max(newer), **self.entries[max(newer)]}
            if op == "list":
                return {"ok": True, "entries": {str(s): e for s, e in sorted(self.entries.items())}}
            if op == "drop":
                self._remove([int(req["step"])])
                return {"ok": True}
            if op == "forget_after":
                self._remove([s for s in self.entries if s > int(req["step"])])
                return {"ok": True}
            if op == "attach":
                self.driver_pid, self._driver_gone = int(req["pid"]), None
                return {"ok": True, "steps": sorted(self.entries)}
            if op == "close":
                self.completed = bool(req.get("completed"))
                self.stop.set()
                return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _put(self, step: int, sha: str, nbytes: int, path: str) -> dict[str, Any]:
        if not path.startswith((self.prefix, self.fallback)) or not os.path.isfile(path):
            return {"ok": False, "error": f"{path} is not a snapshot file of run {self.run_id}"}
        old = self.entries.get(step)
        if old is not None and old["path"] != path:
            Path(old["path"]).unlink(missing_ok=True)
        self.entries[step] = {"sha256": sha, "nbytes": nbytes, "path": path}
        for s in sorted(self.entries)[: -self.keep]:
            self._evict(s)
        return {"ok": True}

    def _remove(self, steps: list[int]) -> None:
        for s in steps:
            e = self.entries.pop(s, None)
            if e is not None:
                Path(e["path"]).unlink(missing_ok=True)

    def _evict(self, step: int) -> None:
        """Leaves memory: spilled to the run directory when no spill is running and the last is old enough."""
        e = self.entries.pop(step)
        now = time.monotonic()
        if (self._spill is None or not self._spill.is_alive()) and now - self._last_spill >= self.spill_secs:
            self._last_spill = now
            self._spill = threading.Thread(target=self._spill_file, args=(step, e, True), daemon=True)
            self._spill.start()
        else:
            self._recycle(e["path"])

    def _recycle(self, path: str) -> None:
        """An evicted snapshot's file becomes the one the next snapshot is written into (``<prefix>free``:
        overwriting memory tmpfs has allocated is ~3x faster than a new file), unless one is kept already
        or it is not in shared memory."""
        free = free_name(self.prefix)
        if path.startswith(self.prefix) and not os.path.exists(free):
            try:
                os.replace(path, free)
                return
            except OSError:
                pass
        Path(path).unlink(missing_ok=True)

    def _spill_file(self, step: int, e: dict[str, Any], unlink: bool) -> None:
        """Copy a snapshot to ``snapshots/`` (data, then its manifest, then the older spills go)."""
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            name = f"step_{step:08d}"
            tmp = self.spill_dir / f".{name}.snap.tmp"
            with open(e["path"], "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.spill_dir / f"{name}.snap")
            _atomic_json(self.spill_dir / f"{name}.json", {"step": step, "sha256": e["sha256"], "nbytes": e["nbytes"]})
            for p in self.spill_dir.glob("step_*.json"):
                if p.stem < name:
                    p.unlink(missing_ok=True)
                    p.with_suffix(".snap").unlink(missing_ok=True)
        except OSError:
            pass  # the run directory went away: nothing to keep
        finally:
            if unlink:
                self._recycle(e["path"])

    # ------------------------------------------------------------- lifetime
    def watch(self) -> str | None:
        """Why the holder should stop now (None: it should not)."""
        if not self.run_dir.is_dir():
            return "run directory gone"
        if pid_alive(self.driver_pid):
            self._driver_gone = None
        elif self._driver_gone is None:
            self._driver_gone = time.monotonic()
        elif time.monotonic() - self._driver_gone > self.linger:
            return f"driver {self.driver_pid} gone and no resume within {self.linger:.0f} s"
        return None

    def shutdown(self, keep_newest: bool) -> None:
        """Remove every shared-memory file of the run (and ``holder.json``); ``keep_newest``: spill the newest
        snapshot to the run directory first (the run did not end cleanly)."""
        with self.lock:
            if self._spill is not None:
                self._spill.join()
            if keep_newest and self.entries and self.run_dir.is_dir():
                newest = max(self.entries)
                spilled = sorted(self.spill_dir.glob("step_*.json"))
                if not spilled or spilled[-1].stem < f"step_{newest:08d}":
                    self._spill_file(newest, self.entries[newest], unlink=False)
            elif not keep_newest:
                shutil.rmtree(self.spill_dir, ignore_errors=True)
            for p in self._files():
                Path(p).unlink(missing_ok=True)
            self.entries.clear()
            info = self.run_dir / "holder.json"
            try:
                if json.loads(info.read_text()).get("pid") == os.getpid():
                    info.unlink()
            except (OSError, ValueError):
                pass


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        holder: Holder = self.server.holder  # type: ignore[attr-defined]
        try:
            req = json.loads(self.rfile.readline())
            resp = holder.handle(req)
        except Exception as e:  # noqa: BLE001 - a bad request gets an answer, never kills the holder
            resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        self.wfile.write(json.dumps(resp).encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="snapshot holder of one elastic run")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--keep", type=int, default=2)
    ap.add_argument("--linger", type=float, default=600.0)
    ap.add_argument("--spill-secs", type=float, default=10.0)
    ap.add_argument("--driver-pid", type=int, required=True)
    a = ap.parse_args(argv)
    run_dir = Path(a.run_dir)
    holder = Holder(run_dir, a.run_id, a.prefix, a.keep, a.linger, a.driver_pid, a.spill_secs)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.holder = holder  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    info = {"pid": os.getpid(), "host": "127.0.0.1", "port": server.server_address[1], "run_id": a.run_id}
    _atomic_json(
        run_dir / "holder.json", {**info, "prefix": a.prefix, "fallback": holder.fallback, "started": time.time()}
    )
    while not holder.stop.wait(0.5):
        reason = holder.watch()
        if reason is not None:
            print(f"snapshot holder {os.getpid()} of {run_dir}: {reason}; exiting", flush=True)
            break
    time.sleep(0.05)  # the close request's answer goes out first
    server.shutdown()
    holder.shutdown(keep_newest=not holder.completed and run_dir.is_dir())


if __name__ == "__main__":
    main()
