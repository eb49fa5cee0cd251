"""A sharded optimizer (ZeRO stage 1) over the shared-memory collective, keeping every step recoverable.

With ``shm`` each rank already sums only its sub-range of every piece of the gradient (reduce-scatter)
before all ranks copy the sums back (all-gather). Sharded, rank r then also *updates* only those
elements: it runs the optimizer on its summed sub-range, writes the new parameter values where the sums
went, and the all-gather hands every rank the new parameters instead of the summed gradient. Each rank
computes and stores 1/N of the optimizer state, and the update's memory traffic (Adam: read p, g, m, v,
write p, m, v) is split over the ranks instead of repeated by each (measured, 10.6M MLP, 2 workers: the
update took 24 ms per worker in full, 7.5 ms sharded; docs/benchmarks.md "Scaling"). The optimizer is
element-wise, so the values are bitwise those of the full update.

Owns this rank's optimizer-state shard (a ring of step-tagged buffers in its shared memory) and reads its
peers' shards; touches the parameters only through the views the worker hands it.

Recovery needs the whole state of the last step even when its owner died. The optimizer-state shard
therefore lives in the rank's own shared memory (``ShmCollective.extra``), which every peer has mapped
and can still read after the owner's death (a hung owner's too), as a ring of ``RING`` buffers, one per
step, each tagged with its step in a header (no tag in a new, zero-filled segment): the owner clears a
buffer's tag before overwriting it and tags it once its last piece is done, *before* the barrier that
ends the step.
Whoever passes that barrier has every rank's state of the new step in shared memory; a reader copies a
shard and checks the header again afterwards (a seqlock), so it never returns a half-overwritten buffer.
The ring keeps the last ``RING`` steps, more than the worker's stash of recent states.

Gradient clipping by global norm needs the norm of the *summed* gradient before any element is updated:
a clipped step first sums this rank's sub-ranges (kept) and all-reduces the per-rank squared norms, then
runs the usual reduce-map-gather with the kept sums scaled (:meth:`ShardedOptimizer._clip_scale`).
"""

from __future__ import annotations

import bisect
import time
from typing import Any

import numpy as np

from openmindspore.elastic.comm.shm import _gather, _offsets, owned_ranges
from openmindspore.train.clip import clip_scale

__all__ = ["ShardedOptimizer", "RING"]

RING = 4
_HEADER = 64  # bytes: RING int64 step numbers, padded


class ShardedOptimizer:
    """ZeRO-1 state of one rank of ``comm`` (a :class:`~openmindspore.elastic.comm.ShmCollective` formed with
    ``extra_bytes=ShardedOptimizer.extra_bytes(...)``) for ``optimizer`` (``train.optim``: element-wise, with
    ``update_piece``). Make one per group formation, then :meth:`start` it from the full state."""

    def __init__(self, optimizer: Any, comm: Any) -> None:
        self.opt, self.comm = optimizer, comm
        self.shapes = [tuple(p.shape) for p in optimizer.params]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n = sum(self.sizes)
        self.slots = tuple(optimizer.slots)
        piece = comm.chunk_bytes // 4
        self.ranges = [owned_ranges(self.n, piece, comm.world_size, k) for k in range(comm.world_size)]
        # per rank: header (int64[RING]: step + 1 of each buffer, 0 = none: a new segment is zero-filled);
        # buffers [ring][slot] (float32)
        self._hdr, self._buf = [], []
        for k, ranges in enumerate(self.ranges):
            m = sum(hi - lo for lo, hi in ranges)
            raw = comm.extra(k)
            if raw.nbytes < self.extra_bytes(optimizer, comm.chunk_bytes, comm.world_size, k):
                raise RuntimeError(f"rank {k}'s shared memory holds {raw.nbytes} bytes, too few for its shard")
            self._hdr.append(raw[: 8 * RING].view(np.int64))
            data = raw[_HEADER : _HEADER + 4 * m * len(self.slots) * RING].view(np.float32)
            self._buf.append(
                [
                    [
                        data[(b * len(self.slots) + j) * m : (b * len(self.slots) + j + 1) * m]
                        for j in range(len(self.slots))
                    ]
                    for b in range(RING)
                ]
            )
        self._p_scratch = np.empty(piece, np.float32)
        self.update_s = 0.0  # seconds spent in the optimizer in the last step

    @staticmethod
    def extra_bytes(optimizer: Any, chunk_bytes: int, world_size: int, rank: int) -> int:
        """Shared memory that ``rank`` needs for its shard of ``optimizer``'s state (``rebuild(extra_bytes=)``)."""
        n = sum(int(np.prod(p.shape)) for p in optimizer.params)
        m = sum(hi - lo for lo, hi in owned_ranges(n, chunk_bytes // 4, world_size, rank))
        return _HEADER + 4 * m * len(optimizer.slots) * RING

    def start(self, step: int, state: dict[str, list[np.ndarray]]) -> None:
        """Take this rank's shard of the full optimizer ``state`` (slot -> per-parameter arrays) after
        ``step``."""
        r, b = self.comm.rank, step % RING
        self._hdr[r][:] = 0
        for j, slot in enumerate(self.slots):
            arrays = [np.ascontiguousarray(a, np.float32).reshape(-1) for a in state[slot]]
            at, out, c = _offsets(arrays), self._buf[r][b][j], 0
            for lo, hi in self.ranges[r]:
                _gather(arrays, at, lo, hi, out[c : c + hi - lo])
                c += hi - lo
        self._hdr[r][b] = step + 1

    def step(
        self, step: int, grads: list[np.ndarray], params: list[np.ndarray], lr: float, max_norm: float | None = None
    ) -> None:
        """Global step ``step`` (0-based; the state after ``step`` steps is in the ring): sum ``grads`` (flat
        float32 arrays) over the group, update this rank's shard, and write every rank's new values into
        ``params`` (flat, writable views of the parameters). Raises ``CommError`` on a failed collective:
        the optimizer and its shard are as before, ``params`` may be partly written (the caller restores
        them). ``max_norm``: clip the summed gradient to that global L2 norm first (:meth:`_clip_scale`)."""
        r, old, new = self.comm.rank, step % RING, (step + 1) % RING
        if self._hdr[r][old] != step + 1:
            raise RuntimeError(f"rank {r} holds no optimizer state of step {step} (has {self._held(r)})")
        summed_shard, scale = None, None
        if max_norm is not None:
            summed_shard, scale = self._clip_scale(grads, params, max_norm)
        undo = self.opt.begin_step()
        self._hdr[r][new] = 0
        ins, outs, p_at = self._buf[r][old], self._buf[r][new], _offsets(params)
        cursor = [0]
        self.update_s = 0.0

        def update(lo: int, hi: int, summed: np.ndarray, out: np.ndarray) -> None:
            t0 = time.perf_counter()
            i = bisect.bisect_right(p_at, lo) - 1
            if p_at[i + 1] >= hi:  # within one parameter: read it in place
                p = params[i][lo - p_at[i] : hi - p_at[i]]
            else:
                p = self._p_scratch[: hi - lo]
                _gather(params, p_at, lo, hi, p)
            c, m = cursor[0], hi - lo
            if summed_shard is not None:  # clipping: the sums of the first pass, scaled
                summed = summed_shard[c : c + m] if scale is None else summed_shard[c : c + m] * np.float32(scale)
            self.opt.update_piece(p, summed, [s[c : c + m] for s in ins], [out, *(s[c : c + m] for s in outs)], lr)
            cursor[0] = c + m
            self.update_s += time.perf_counter() - t0

        def done() -> None:
            self._hdr[r][new] = step + 2

        try:
            self.comm.reduce_map_gather_(grads, params, update, before_last_barrier=done)
        except BaseException:
            self.opt.rollback(undo)
            raise

    def _clip_scale(
        self, grads: list[np.ndarray], params: list[np.ndarray], max_norm: float
    ) -> tuple[np.ndarray, float | None]:
        """First pass of a clipped step: sum this rank's sub-ranges of ``grads`` over the group (kept, in
        owned-range order) while the all-gather hands back the unchanged parameters, then one small
        all-reduce of the per-rank squared norms (float64, summed in rank order: the same factor on every
        rank). Returns the kept sums and the clipping factor (``train.clip.clip_scale``; ``None``: none).
        The update pass then sums again (a second reduce-scatter: the collective offers no split of
        reduce-scatter and all-gather), ignoring those sums."""
        r, w = self.comm.rank, self.comm.world_size
        kept = np.empty(sum(hi - lo for lo, hi in self.ranges[r]), np.float32)
        p_at, cursor, sq = _offsets(params), [0], [0.0]

        def keep(lo: int, hi: int, summed: np.ndarray, out: np.ndarray) -> None:
            c, m = cursor[0], hi - lo
            kept[c : c + m] = summed
            sq[0] += float(np.square(summed, dtype=np.float64).sum())
            _gather(params, p_at, lo, hi, out)  # the all-gather writes back the values already there
            cursor[0] = c + m

        self.comm.reduce_map_gather_(grads, params, keep)
        norms = np.zeros(w, np.float64)
        norms[r] = sq[0]
        self.comm.allreduce_(norms, "sum")
        total = 0.0
        for k in range(w):
            total += float(norms[k])
        return kept, clip_scale(total, max_norm)

    def read(self, step: int) -> dict[str, list[np.ndarray]]:
        """The full optimizer state after ``step`` (slot -> per-parameter arrays, new), assembled from every
        rank's shard (dead ranks' included); RuntimeError if a shard of that step is no longer held."""
        b = step % RING
        flats = {slot: np.empty(self.n, np.float32) for slot in self.slots}
        for k, ranges in enumerate(self.ranges):
            if self._hdr[k][b] != step + 1:
                raise RuntimeError(
                    f"rank {k}'s optimizer state of step {step} is no longer held (it holds steps {self._held(k)})"
                )
            for j, slot in enumerate(self.slots):
                c, src = 0, self._buf[k][b][j]
                for lo, hi in ranges:
                    flats[slot][lo:hi] = src[c : c + hi - lo]
                    c += hi - lo
            if self._hdr[k][b] != step + 1:  # overwritten while copying
                raise RuntimeError(f"rank {k}'s optimizer state of step {step} was overwritten while read")
        at = [0, *np.cumsum(self.sizes).tolist()]
        return {slot: [f[at[i] : at[i + 1]].reshape(s) for i, s in enumerate(self.shapes)] for slot, f in flats.items()}

    def _held(self, rank: int) -> list[int]:
        return sorted(int(t) - 1 for t in self._hdr[rank] if t > 0)
