"""Process-level helpers of the elastic workers: CPU threads and core pinning of the current process, a
child that dies with its parent, and the warm MindSpore scheduler process of an MCCL group.

Owns the :class:`Scheduler` actor's child process; the functions touch only the calling process
(its environment, its threads' CPU affinity, its parent-death signal).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import IO

__all__ = ["Scheduler", "die_with_parent", "pin_to_cores", "set_threads"]


def set_threads(threads: int) -> None:
    """CPU threads of the numeric libraries of this process (set before they start)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def pin_to_cores(rank: int, world_size: int, threads: int, cores: list[int]) -> list[int] | None:
    """Pin every thread of this process to the ``threads`` cores of ``rank`` among ``cores`` (the node's,
    as the process started with): rank r gets ``cores[r*threads : (r+1)*threads]`` when the whole group
    fits (``world_size * threads <= len(cores)``), else every thread may use all of ``cores`` again.
    Returns the cores pinned to, or None when not pinned.

    MindSpore keeps ~1.8 cores busy in a "1-thread" process (its actor thread and the waiting Python
    thread spin): two unpinned 1-thread workers on 2 cores slow each other 1.6x, pinned they run at
    their solo speed (measured, default CNN). New threads inherit the affinity."""
    fits = bool(cores) and world_size * threads <= len(cores)
    chosen = set(cores[rank * threads : (rank + 1) * threads]) if fits else set(cores)
    if not chosen:
        return None
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), chosen)
        except OSError:  # a thread that just exited
            pass
    return sorted(chosen) if fits else None


def die_with_parent() -> None:
    """In a child process: get SIGKILL when the parent dies (Linux), so no orphan outlives its actor."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Scheduler:
    """MindSpore's cluster scheduler (``MS_ROLE=MS_SCHED``) for one group. Its ``init()`` blocks and holds
    the GIL, so it runs in a warm child process (``_sched_main``) that dies with this actor."""

    def __init__(self) -> None:
        env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openmindspore.elastic._sched_main"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        if self.proc.stdin is None or self.proc.stdout is None:  # not with PIPE
            raise RuntimeError("the scheduler process has no pipes")
        self._stdin: IO[str] = self.proc.stdin
        self._stdout: IO[str] = self.proc.stdout

    def ready(self) -> int:
        line = self._stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"scheduler process failed to start (exit code {self.proc.poll()})")
        return os.getpid()

    def start(self, world_size: int, host: str = "127.0.0.1") -> tuple[str, int]:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        self._stdin.write(f"{host} {port} {world_size}\n")
        self._stdin.flush()
        return host, port
