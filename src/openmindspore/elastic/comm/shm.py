"""Shared-memory all-reduce for the ranks of one node, rebuildable in a live process.

Each rank owns one segment in ``/dev/shm`` (``inbox`` of ``chunk_bytes`` + ``outbox`` of
``chunk_bytes / world_size``) and maps every peer's. An all-reduce of a flat array goes in pieces of at
most ``chunk_bytes``; per piece::

    1. copy the piece into my inbox                       (skipped for a staging() buffer)
    2. barrier                                            (all inboxes written)
    3. reduce-scatter: for my sub-range r, outbox_r = ((in_0 + in_1) + in_2) + ...   (rank order)
    4. barrier                                            (all sub-ranges reduced)
    5. all-gather: copy every rank's outbox into my piece

Step 3 fixes the summation order, so the result is bitwise the rank-ordered sum of
:func:`~openmindspore.elastic.comm.base.reference_allreduce`, identical on every rank. Barriers go over a
socket mesh (:mod:`._mesh`): a dead peer's socket closes and survivors raise
:class:`~openmindspore.elastic.comm.base.PeerLostError` within milliseconds; every wait has a deadline.
Segment files are unlinked as soon as every rank has mapped them, so a killed process leaks no memory.
"""

from __future__ import annotations

import bisect
import logging
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.elastic.comm._lifecycle import GroupLifecycle
from openmindspore.elastic.comm._mesh import Mesh
from openmindspore.elastic.comm.base import CommAbortedError, check_buffer
from openmindspore.errors import ConfigError

__all__ = ["ShmCollective", "DEFAULT_CHUNK_BYTES", "as_flat_numpy", "owned_ranges", "write_back"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 1 << 20  # measured: 1-2 MiB pieces (cache-resident) are fastest (docs/benchmarks.md)
_ALIGN = 64
_SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))


def as_flat_numpy(buf: Any) -> np.ndarray:
    """A numpy view of ``buf`` (numpy array, or a MindSpore tensor's host memory)."""
    if isinstance(buf, np.ndarray):
        return buf
    if hasattr(buf, "asnumpy"):
        return buf.asnumpy()
    raise ConfigError("buf", type(buf).__name__, "a numpy array or a MindSpore Tensor")


def write_back(buf: Any, arr: np.ndarray) -> Any:
    """Make ``buf`` hold ``arr`` when ``arr`` was not a view of its memory (MindSpore tensors)."""
    if isinstance(buf, np.ndarray) or buf.asnumpy().ctypes.data == arr.ctypes.data:
        return buf
    from mindspore import Tensor

    buf.assign_value(Tensor.from_numpy(arr))
    return buf


def _round_up(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _sum_in_rank_order(ins: list[np.ndarray], out: np.ndarray) -> None:
    """``out = ((ins[0] + ins[1]) + ins[2]) + ...``: the fixed order that makes every sum bitwise reproducible."""
    np.add(ins[0], ins[1], out=out)
    for x in ins[2:]:
        np.add(out, x, out=out)


def _offsets(arrays: list[np.ndarray]) -> list[int]:
    """Where each of the flat ``arrays`` starts in their concatenation, plus its end."""
    return [0, *np.cumsum([a.size for a in arrays]).tolist()]


def owned_ranges(n: int, piece: int, world_size: int, rank: int) -> list[tuple[int, int]]:
    """The element ranges ``[lo, hi)`` of an ``n``-element buffer that ``rank`` sums in
    :meth:`ShmCollective.allreduce_` and :meth:`ShmCollective.reduce_map_gather_` with pieces of ``piece``
    elements: its sub-range of every piece, in order (empty ones left out)."""
    out = []
    for off in range(0, n, piece):
        m = min(piece, n - off)
        lo, hi = off + m * rank // world_size, off + m * (rank + 1) // world_size
        if hi > lo:
            out.append((lo, hi))
    return out


def _segments(at: list[int], lo: int, hi: int):
    """``(i, a, b, o)``: elements ``[a, b)`` of array ``i`` are elements ``[lo + o, lo + o + b - a)`` of the
    concatenation (in order)."""
    i = bisect.bisect_right(at, lo) - 1
    pos = lo
    while pos < hi:
        end = min(hi, at[i + 1])
        if end > pos:
            yield i, pos - at[i], end - at[i], pos - lo
        pos, i = end, i + 1


def _gather(arrays: list[np.ndarray], at: list[int], lo: int, hi: int, out: np.ndarray) -> None:
    """Copy elements ``[lo, hi)`` of the concatenation of ``arrays`` into ``out``."""
    for i, a, b, o in _segments(at, lo, hi):
        out[o : o + b - a] = arrays[i][a:b]


def _scatter(arrays: list[np.ndarray], at: list[int], lo: int, hi: int, data: np.ndarray) -> None:
    """Write ``data`` over elements ``[lo, hi)`` of the concatenation of ``arrays``."""
    for i, a, b, o in _segments(at, lo, hi):
        arrays[i][a:b] = data[o : o + b - a]


class ShmCollective(GroupLifecycle):
    """All-reduce over shared memory among ``world_size`` processes of one node (see module docstring).

    ``group`` names the group (unique per formation, <= ~80 characters; ``None``: join one later with
    :meth:`rebuild`); ``timeout`` (seconds) bounds every wait; ``chunk_bytes`` is the piece size (memory
    per rank: ``chunk_bytes * (1 + 1/world_size)``).
    """

    backend = "shm"
    can_rebuild = True

    def __init__(
        self,
        group: str | None,
        rank: int = 0,
        world_size: int = 1,
        timeout: float = 30.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        super().__init__(timeout, chunk_bytes)
        self._maps: list[mmap.mmap] = []
        self._inbox: list[np.ndarray] = []
        self._outbox: list[np.ndarray] = []
        self._extra: list[np.ndarray] = []
        self._scratch = np.empty(0, np.uint8)
        if group is not None:
            self.rebuild(group, rank, world_size)

    # ------------------------------------------------------------ formation
    def rebuild(self, group: str, rank: int, world_size: int, extra_bytes: int = 0) -> None:
        """Leave the current group (if any) and form ``group`` as ``rank`` of ``world_size``. Clears an
        earlier :meth:`abort`. Raises :class:`CommError` if the peers do not all arrive in ``timeout``.
        ``extra_bytes``: shared memory of this rank's own besides the collective's (:meth:`extra`), which every
        peer maps too and can still read after this process dies (the size may differ per rank)."""
        if not 0 <= rank < world_size:
            raise ConfigError("rank", rank, f"0 <= rank < world_size={world_size}")
        self._teardown()
        self._drain_abort()
        if group in self._doomed:
            raise CommAbortedError(f"rank {rank}: group {group} was aborted before it formed")
        self.group, self.rank, self.world_size = group, rank, world_size
        out_bytes = _round_up(-(-self.chunk_bytes // world_size))
        size = self.chunk_bytes + out_bytes + _round_up(int(extra_bytes))
        path = _SHM_DIR / f"oms-comm-{group}-{rank}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            own = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        try:
            self._mesh = Mesh(group, rank, world_size, self.timeout, self._abort_r, self._aborted)
            self._mesh.connect()
            maps = []
            for r in range(world_size):
                if r == rank:
                    maps.append(own)
                    continue
                fd = os.open(_SHM_DIR / f"oms-comm-{group}-{r}", os.O_RDWR)
                try:
                    maps.append(mmap.mmap(fd, os.fstat(fd).st_size))
                finally:
                    os.close(fd)
            self._maps = maps
            self._inbox = [np.frombuffer(m, np.uint8, self.chunk_bytes, 0) for m in maps]
            self._outbox = [np.frombuffer(m, np.uint8, out_bytes, self.chunk_bytes) for m in maps]
            self._extra = [
                np.frombuffer(m, np.uint8, len(m) - self.chunk_bytes - out_bytes, self.chunk_bytes + out_bytes)
                for m in maps
            ]
            self._mesh.barrier()  # everyone has mapped everyone's segment
        except BaseException:
            self._teardown()
            raise
        finally:
            path.unlink(missing_ok=True)

    def _teardown(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._inbox, self._outbox, self._extra = [], [], []
        for m in self._maps:
            try:
                m.close()
            except BufferError:  # a caller still holds a staging() view: the mapping goes with it
                pass
        self._maps = []

    # ----------------------------------------------------------- collectives
    def staging(self, n: int, dtype: Any = np.float32) -> np.ndarray:
        """A flat array of ``n`` elements to fill and pass to :meth:`allreduce_`: a view of this rank's inbox
        when it fits (saves one copy), else a new array. Valid until the next collective call."""
        dt = np.dtype(dtype)
        if self._inbox and n * dt.itemsize <= self.chunk_bytes:
            return self._inbox[self.rank][: n * dt.itemsize].view(dt)
        return np.empty(n, dt)

    def allreduce_(self, buf: Any, op: str = "sum") -> Any:
        """Reduce ``buf`` (shape ``(n,)``) over the group in place, rank-ordered; returns ``buf``."""
        arr = as_flat_numpy(buf)
        check_buffer(arr, op)
        self._check_open()
        if self.world_size == 1:
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank}: collective aborted")
            return buf
        item = arr.dtype.itemsize
        step = self.chunk_bytes // item
        raw = arr.view(np.uint8)
        staged = raw.ctypes.data == self._inbox[self.rank].ctypes.data and arr.nbytes <= self.chunk_bytes
        for off in range(0, len(arr), step):
            m = min(step, len(arr) - off)
            if not staged:
                self._inbox[self.rank][: m * item] = raw[off * item : (off + m) * item]
            self._piece(arr[off : off + m], m, arr.dtype, op)
        return write_back(buf, arr)

    def _piece(self, out: np.ndarray, m: int, dt: np.dtype, op: str) -> None:
        n, r, item = self.world_size, self.rank, dt.itemsize
        bounds = [m * k // n for k in range(n + 1)]
        mesh = self._peers()
        mesh.barrier()
        lo, hi = bounds[r], bounds[r + 1]
        if hi > lo:
            acc = self._outbox[r][: (hi - lo) * item].view(dt)
            _sum_in_rank_order([b[lo * item : hi * item].view(dt) for b in self._inbox], acc)
            if op == "mean":
                np.divide(acc, dt.type(n), out=acc)
        mesh.barrier()
        for k in range(n):
            a, b = bounds[k], bounds[k + 1]
            if b > a:
                out[a:b] = self._outbox[k][: (b - a) * item].view(dt)

    def extra(self, rank: int) -> np.ndarray:
        """Rank ``rank``'s extra shared memory (``rebuild(extra_bytes=...)``; bytes, maybe rounded up)."""
        return self._extra[rank]

    def reduce_map_gather_(
        self, src: list[np.ndarray], dst: list[np.ndarray], fn: Any, before_last_barrier: Any = None
    ) -> None:
        """Reduce-scatter, map, all-gather (ZeRO). ``src`` and ``dst``: flat arrays of one dtype whose
        concatenations have the same length on every rank. Piece by piece, as in :meth:`allreduce_`, this
        rank sums its sub-range ``[lo, hi)`` of ``src`` over the group (rank-ordered: bitwise
        :func:`reference_allreduce`) and calls ``fn(lo, hi, summed, out)``, which writes the values of that
        range into ``out``; every rank's ``out`` is then copied into ``dst``. ``before_last_barrier()`` runs
        after this rank's last ``fn``, before the barrier that ends the last piece (past it every rank's
        ``fn`` has run on every piece). A failure raises :class:`CommError` with ``dst`` partly written."""
        self._check_open()
        dt = src[0].dtype
        n, item = sum(a.size for a in src), dt.itemsize
        if sum(a.size for a in dst) != n or any(a.dtype != dt for a in (*src, *dst)):
            raise ConfigError("dst", [a.size for a in dst], f"{n} elements of {dt} in all, as src")
        if self.world_size == 1 and self._aborted.is_set():
            raise CommAbortedError(f"rank {self.rank}: collective aborted")
        src_at, dst_at = _offsets(src), _offsets(dst)
        step, w, r = self.chunk_bytes // item, self.world_size, self.rank
        if self._scratch.nbytes < 2 * self.chunk_bytes:
            self._scratch = np.empty(2 * self.chunk_bytes, np.uint8)
        for off in range(0, n, step):
            m = min(step, n - off)
            bounds = [off + m * k // w for k in range(w + 1)]
            lo, hi = bounds[r], bounds[r + 1]
            acc = self._scratch[: (hi - lo) * item].view(dt)
            if w > 1:
                _gather(src, src_at, off, off + m, self._inbox[r][: m * item].view(dt))
                self._peers().barrier()
                if hi > lo:
                    _sum_in_rank_order([b[(lo - off) * item : (hi - off) * item].view(dt) for b in self._inbox], acc)
                outs = [self._outbox[k][: (bounds[k + 1] - bounds[k]) * item].view(dt) for k in range(w)]
            else:
                _gather(src, src_at, lo, hi, acc)
                outs = [self._scratch[self.chunk_bytes : self.chunk_bytes + m * item].view(dt)]
            if hi > lo:
                fn(lo, hi, acc, outs[r])
            if off + m >= n and before_last_barrier is not None:
                before_last_barrier()
            if w > 1:
                self._peers().barrier()
            for k in range(w):
                if bounds[k + 1] > bounds[k]:
                    _scatter(dst, dst_at, bounds[k], bounds[k + 1], outs[k])
