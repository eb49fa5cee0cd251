"""The life of a rebuildable collective, shared by the shared-memory and TCP backends.

Owns what every such backend keeps beside its buffers: the validated ``timeout`` and ``chunk_bytes``, the
abort pipe and flag (:meth:`abort` from another thread wakes the current wait), the groups doomed before this
rank joined them, the socket mesh of the current group, and whether the collective is closed. A backend
subclasses it and supplies ``_teardown`` (leave the current group, drop its buffers); ``_release`` frees what
the backend holds beyond a group (called once, on :meth:`close`).
"""

from __future__ import annotations

import os
import threading

from openmindspore.elastic.comm._mesh import Mesh
from openmindspore.elastic.comm.base import CommError
from openmindspore.errors import ConfigError

__all__ = ["GroupLifecycle"]


class GroupLifecycle:
    """Abort, barrier, close and the checks around them; see the module docstring."""

    def __init__(self, timeout: float, chunk_bytes: int) -> None:
        if chunk_bytes < 4096:
            raise ConfigError("chunk_bytes", chunk_bytes, "at least 4096 bytes", "use the default (1 MiB)")
        if timeout <= 0:
            raise ConfigError("timeout", timeout, "seconds > 0")
        self.timeout, self.chunk_bytes = float(timeout), int(chunk_bytes)
        self._abort_r, self._abort_w = os.pipe()
        self._aborted = threading.Event()
        self.group, self.rank, self.world_size = "", 0, 1
        self._mesh: Mesh | None = None
        self._closed = False
        self._doomed: set[str] = set()  # groups aborted before this rank began to join them

    def _teardown(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """What the backend holds beyond a group (nothing by default)."""

    def _drain_abort(self) -> None:
        self._aborted.clear()
        os.set_blocking(self._abort_r, False)
        try:
            while os.read(self._abort_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _peers(self) -> Mesh:
        if self._mesh is None:
            raise CommError(f"rank {self.rank}: no group of more than one rank is formed")
        return self._mesh

    def barrier(self) -> None:
        """Return once every rank has called ``barrier`` (deadline ``timeout``)."""
        self._check_open()
        if self._mesh is not None:
            self._mesh.barrier()

    def abort(self, group: str | None = None) -> None:
        """Thread-safe: wake and fail the current wait (and later ones until ``rebuild``). With ``group``:
        also make a later ``rebuild`` into that group fail (a formation the driver gave up)."""
        if group is not None:
            self._doomed.add(group)
        self._aborted.set()
        try:
            os.write(self._abort_w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._teardown()
        self._release()
        for fd in (self._abort_r, self._abort_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise CommError(f"rank {self.rank}: the collective of group {self.group} is closed")
        if self.world_size > 1 and self._mesh is None:
            raise CommError(f"rank {self.rank}: not connected (forming group {self.group} failed); call rebuild()")

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
