"""All-reduce for a group that spans nodes: shared memory among the ranks of a node, TCP between nodes,
rebuildable in a live process.

The protocol is the shm backend's reduce-scatter / all-gather, with the ranks of other nodes reached over
TCP instead of shared memory. Per piece of at most ``chunk_bytes`` (``m`` elements, sub-range ``r`` of it
owned by rank ``r``)::

    1. copy the piece into my inbox (only when this node has other ranks of the group)
    2. reduce-scatter over TCP: send sub-range k of my piece to each rank k on another node, receive
       theirs of my sub-range (non-blocking, all peers at once)
    3. barrier among this node's ranks                     (their inboxes written)
    4. sum my sub-range in rank order: ((x_0 + x_1) + x_2) + ... from my piece, the inboxes of this node's
       ranks and the sub-ranges received from other nodes
    5. all-gather: send my sum to every rank on another node and receive theirs into my piece; put mine
       into my outbox; barrier among this node's ranks; copy their outboxes into my piece

Step 4 fixes the order, so the result is bitwise :func:`~openmindspore.elastic.comm.base.reference_allreduce`
(hence the shm backend's and, at the same world size, MCCL's). Every rank has a socket to every other
(:mod:`._mesh`): a peer that dies closes it and every survivor raises
:class:`~openmindspore.elastic.comm.base.PeerLostError` within milliseconds (a barrier among one node's
ranks watches the other nodes' sockets too); every wait has a deadline; :meth:`TcpCollective.abort` wakes
it. Data crossing nodes per rank and all-reduce: ``2 x bytes x (ranks on other nodes) / world_size``
(each byte once each way with one rank per node, as a ring would).

Owns this process's group membership (mesh, shared-memory segments of its node) and a TCP
:class:`~openmindspore.elastic.comm._tcp.Endpoint` that outlives its groups (the driver learns its port once).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from openmindspore.elastic.comm._lifecycle import GroupLifecycle
from openmindspore.elastic.comm._mesh import Mesh
from openmindspore.elastic.comm._tcp import Endpoint
from openmindspore.elastic.comm.base import CommAbortedError, check_buffer
from openmindspore.elastic.comm.shm import _SHM_DIR, DEFAULT_CHUNK_BYTES, _sum_in_rank_order, as_flat_numpy, write_back
from openmindspore.errors import ConfigError

__all__ = ["TcpCollective"]

_ALIGN = 64


def _round_up(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class TcpCollective(GroupLifecycle):
    """All-reduce among ``world_size`` processes on one or more nodes (see the module docstring).

    ``host``: this node's IP as other nodes reach it (the endpoint listens there, port 0), unless an
    ``endpoint`` of the process's is given (it then outlives this object); ``timeout`` (seconds) bounds every
    wait; ``chunk_bytes`` is the piece size. Form a group with :meth:`rebuild`, giving each rank's node id
    and endpoint address.
    """

    backend = "tcp"
    can_rebuild = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        endpoint: Endpoint | None = None,
    ) -> None:
        super().__init__(timeout, chunk_bytes)
        self._owns_endpoint = endpoint is None
        self.endpoint = Endpoint(host) if endpoint is None else endpoint
        self._maps: dict[int, mmap.mmap] = {}
        self._inbox: dict[int, np.ndarray] = {}
        self._outbox: dict[int, np.ndarray] = {}
        self._remote: list[int] = []
        self._rbuf: dict[int, np.ndarray] = {}
        self._scratch = np.empty(0, np.uint8)

    def address(self) -> tuple[str, int]:
        """Where peers on other nodes connect to this process: ``(host, port)``."""
        return self.endpoint.address()

    # ------------------------------------------------------------ formation
    def rebuild(
        self,
        group: str,
        rank: int,
        world_size: int,
        nodes: Sequence[str] = (),
        addrs: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Leave the current group and form ``group`` as ``rank`` of ``world_size``; ``nodes[k]`` is rank k's
        node id and ``addrs[k]`` its endpoint address (empty: all on this node). Clears an earlier
        :meth:`abort`; raises :class:`CommError` if the peers do not all arrive within ``timeout``."""
        if not 0 <= rank < world_size:
            raise ConfigError("rank", rank, f"0 <= rank < world_size={world_size}")
        nodes = list(nodes) or ["local"] * world_size
        if len(nodes) != world_size or (addrs and len(addrs) != world_size):
            raise ConfigError("nodes", nodes, f"one node id (and address) per rank of {world_size}")
        self._teardown()
        self._drain_abort()
        if group in self._doomed:
            raise CommAbortedError(f"rank {rank}: group {group} was aborted before it formed")
        self.group, self.rank, self.world_size = group, rank, world_size
        remote = {k: (str(addrs[k][0]), int(addrs[k][1])) for k in range(world_size) if nodes[k] != nodes[rank]}
        local = [k for k in range(world_size) if k not in remote]
        out_bytes = _round_up(-(-self.chunk_bytes // world_size)) + _ALIGN
        path = _SHM_DIR / f"oms-comm-{group}-{rank}"
        own = None
        if len(local) > 1:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            try:
                os.ftruncate(fd, self.chunk_bytes + out_bytes)
                own = mmap.mmap(fd, self.chunk_bytes + out_bytes)
            finally:
                os.close(fd)
        try:
            self._mesh = Mesh(
                group, rank, world_size, self.timeout, self._abort_r, self._aborted, remote, self.endpoint
            )
            self._mesh.connect()
            if own is not None:
                for k in local:
                    if k == rank:
                        self._maps[k] = own
                        continue
                    fd = os.open(_SHM_DIR / f"oms-comm-{group}-{k}", os.O_RDWR)
                    try:
                        self._maps[k] = mmap.mmap(fd, os.fstat(fd).st_size)
                    finally:
                        os.close(fd)
                self._inbox = {k: np.frombuffer(m, np.uint8, self.chunk_bytes, 0) for k, m in self._maps.items()}
                self._outbox = {
                    k: np.frombuffer(m, np.uint8, out_bytes, self.chunk_bytes) for k, m in self._maps.items()
                }
            self._remote = sorted(remote)
            self._rbuf = {k: np.empty(out_bytes, np.uint8) for k in self._remote}
            if own is None:
                self._scratch = np.empty(out_bytes, np.uint8)
            self._mesh.barrier()  # everyone has mapped everyone's segment
        except BaseException:
            if own is not None and rank not in self._maps:
                own.close()
            self._teardown()
            raise
        finally:
            path.unlink(missing_ok=True)

    def _teardown(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._inbox, self._outbox, self._rbuf, self._remote = {}, {}, {}, []
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:
                pass
        self._maps = {}

    # ----------------------------------------------------------- collectives
    def staging(self, n: int, dtype: Any = np.float32) -> np.ndarray:
        """A flat array of ``n`` elements to fill and pass to :meth:`allreduce_` (a new one)."""
        return np.empty(n, np.dtype(dtype))

    def allreduce_(self, buf: Any, op: str = "sum") -> Any:
        """Reduce ``buf`` (shape ``(n,)``) over the group in place, rank-ordered; returns ``buf``."""
        arr = as_flat_numpy(buf)
        check_buffer(arr, op)
        self._check_open()
        if self.world_size == 1:
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank}: collective aborted")
            return buf
        step = self.chunk_bytes // arr.dtype.itemsize
        for off in range(0, len(arr), step):
            self._piece(arr[off : off + step], op)
        return write_back(buf, arr)

    def _piece(self, piece: np.ndarray, op: str) -> None:
        n, r, dt = self.world_size, self.rank, piece.dtype
        item, m = dt.itemsize, len(piece)
        mesh = self._peers()
        bounds = [m * k // n * item for k in range(n + 1)]  # in bytes
        lo, hi = bounds[r], bounds[r + 1]
        raw = piece.view(np.uint8)
        shared = bool(self._inbox)
        if shared:
            self._inbox[r][: m * item] = raw
        mesh.exchange(
            {k: raw[bounds[k] : bounds[k + 1]].data for k in self._remote},
            {k: self._rbuf[k][: hi - lo].data for k in self._remote},
        )
        if shared:
            mesh.barrier(mesh.local)
        # alone on this node, ranks 0 and 1 sum straight into their own sub-range: the rank-ordered sum reads
        # it only in its first addition (an element-wise, exactly aliased output), and it is not sent before
        in_place = not shared and r <= 1
        acc = (self._outbox[r] if shared else raw[lo:hi] if in_place else self._scratch)[: hi - lo].view(dt)
        if hi > lo:
            ins = [
                raw[lo:hi] if k == r else (self._rbuf[k] if k in self._rbuf else self._inbox[k][lo:])[: hi - lo]
                for k in range(n)
            ]
            _sum_in_rank_order([x.view(dt) for x in ins], acc)
            if op == "mean":
                np.divide(acc, dt.type(n), out=acc)
        mine = acc.view(np.uint8)
        mesh.exchange(
            {k: mine.data for k in self._remote},
            {k: raw[bounds[k] : bounds[k + 1]].data for k in self._remote},
        )
        if not in_place:
            raw[lo:hi] = mine
        if shared:
            mesh.barrier(mesh.local)
            for k, box in self._outbox.items():
                if k != r and bounds[k + 1] > bounds[k]:
                    raw[bounds[k] : bounds[k + 1]] = box[: bounds[k + 1] - bounds[k]]

    def _release(self) -> None:
        if self._owns_endpoint:
            self.endpoint.close()
