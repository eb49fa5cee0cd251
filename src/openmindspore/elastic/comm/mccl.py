"""MindSpore's own collectives (MCCL on CPU, HCCL/NCCL elsewhere) behind the :class:`Collective` seam.

The process must already be in a MindSpore group (``mindspore.communication.init()``, done by
:meth:`openmindspore.elastic.worker.Worker.connect`). MindSpore cannot re-initialise a group in a live
process, so ``can_rebuild`` is false and :meth:`MCCLCollective.rebuild` raises: the elastic layer then
replaces the processes. Waits are MindSpore's own (a dead peer blocks survivors ~30 s); the elastic
driver detects failures through the engine instead and retires the group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openmindspore.elastic.comm.base import CommError, check_buffer
from openmindspore.elastic.comm.shm import as_flat_numpy, write_back

__all__ = ["MCCLCollective"]


class MCCLCollective:
    """``AllReduce(SUM)`` of MindSpore over the process's group (``rank``/``world_size`` from MindSpore)."""

    backend = "mccl"
    can_rebuild = False

    def __init__(self) -> None:
        from mindspore import ops
        from mindspore.communication import get_group_size, get_rank

        self.rank, self.world_size = get_rank(), get_group_size()
        self.group = "hccl_world_group"
        self._op = ops.AllReduce(ops.ReduceOp.SUM)

    def allreduce_(self, buf: Any, op: str = "sum") -> Any:
        """Sum (or mean) ``buf`` (shape ``(n,)``) over the group in place; the summation order is
        MindSpore's (for two ranks it equals the rank-ordered sum: addition of two terms commutes)."""
        from mindspore import Tensor

        arr = as_flat_numpy(buf)
        check_buffer(arr, op)
        out = self._op(Tensor.from_numpy(arr)).asnumpy()
        if op == "mean":
            out = np.divide(out, out.dtype.type(self.world_size), dtype=out.dtype)
        arr[...] = out
        return write_back(buf, arr)

    def allreduce_tensor(self, t: Any) -> Any:
        """Sum a MindSpore tensor over the group and return the result as a new tensor, without waiting
        for it on the host (PyNative runs it asynchronously; the worker's step uses this so that the
        main thread does not block the process's other threads while a peer is gone)."""
        return self._op(t)

    def barrier(self) -> None:
        self.allreduce_(np.zeros(1, np.float32))

    def abort(self) -> None:
        """MCCL has no abort: the driver retires the processes instead (no-op)."""

    def rebuild(self, group: str, rank: int, world_size: int) -> None:
        raise CommError(
            "MindSpore (MCCL) cannot re-initialise a communication group in a live process; "
            "use --comm shm for in-process rebuilds (the elastic layer replaces MCCL processes)"
        )

    def close(self) -> None:
        """Nothing to release before the process ends."""
