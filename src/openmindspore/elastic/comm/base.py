"""The collective-communication seam of the elastic layer: a ``Collective`` protocol, its errors, and the
numpy reference that defines the results.

Semantics shared by every backend:

* ``allreduce_(buf, op)`` reduces a flat (1-D, contiguous) array over the group *in place* and returns
  it. ``op="sum"`` adds the ranks' arrays **in rank order** — ``((x_0 + x_1) + x_2) + ...`` element by
  element, in the array's own dtype — so a backend that follows it is bitwise deterministic and gives
  the same bits on every rank. ``op="mean"`` is that sum divided by the world size (floating dtypes
  only). :func:`reference_allreduce` is the definition the tests hold backends to.
* Every wait has a deadline (``timeout`` seconds): a peer that dies gives survivors a
  :class:`PeerLostError` at once, a peer that stops answering a :class:`CommTimeoutError` after the
  timeout, and :meth:`Collective.abort` (from another thread) a :class:`CommAbortedError`.
* ``rebuild(group, rank, world_size)`` forms a new group in the live process, when the backend can
  (``can_rebuild``); MindSpore's MCCL cannot, so its processes are replaced instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any, Protocol, runtime_checkable

import numpy as np

from openmindspore.errors import ConfigError, OMSError

__all__ = [
    "Collective",
    "CommError",
    "PeerLostError",
    "CommTimeoutError",
    "CommAbortedError",
    "REDUCE_OPS",
    "SUPPORTED_DTYPES",
    "check_buffer",
    "reference_allreduce",
]

REDUCE_OPS = ("sum", "mean")
SUPPORTED_DTYPES = tuple(
    np.dtype(d) for d in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")
)


class CommError(OMSError):
    """A collective failed; ``ranks`` are the peers involved (dead, silent or unknown = empty)."""

    kind = "error"

    def __init__(self, msg: str, ranks: Sequence[int] = ()) -> None:
        super().__init__(msg)
        self.ranks = sorted(set(int(r) for r in ranks))


class PeerLostError(CommError):
    """A peer's connection closed mid-collective (its process died)."""

    kind = "peer_lost"


class CommTimeoutError(CommError):
    """Peers did not reach a synchronisation point within the deadline (hung or very slow)."""

    kind = "timeout"


class CommAbortedError(CommError):
    """``abort()`` was called from another thread while this rank waited."""

    kind = "aborted"


@runtime_checkable
class Collective(Protocol):
    """A communication group of ``world_size`` processes; this process is ``rank``."""

    backend: str
    rank: int
    world_size: int
    can_rebuild: bool

    def allreduce_(self, buf: Any, op: str = "sum") -> Any:
        """Reduce ``buf`` (1-D numpy array or MindSpore tensor, shape ``(n,)``) in place; returns it."""

    def barrier(self) -> None:
        """Return once every rank has called ``barrier`` (or raise a :class:`CommError`)."""

    def abort(self) -> None:
        """From any thread: make the current and every later wait raise :class:`CommAbortedError`."""

    def rebuild(self, group: str, rank: int, world_size: int) -> None:
        """Leave the current group and join ``group`` as ``rank`` of ``world_size`` (same process)."""

    def close(self) -> None:
        """Release sockets and memory; idempotent."""


def check_buffer(buf: np.ndarray, op: str) -> None:
    """Raise :class:`ConfigError` unless ``buf`` is a 1-D contiguous array of a supported dtype and ``op``
    suits it."""
    if op not in REDUCE_OPS:
        raise ConfigError("op", op, f"one of {list(REDUCE_OPS)}")
    if not isinstance(buf, np.ndarray) or buf.ndim != 1 or not buf.flags.c_contiguous or not buf.flags.writeable:
        shape = getattr(buf, "shape", None)
        raise ConfigError(
            "buf",
            f"{type(buf).__name__} of shape {shape}",
            "a writable, contiguous 1-D numpy array (a flat buffer)",
            "flatten with np.ravel first",
        )
    if buf.dtype not in SUPPORTED_DTYPES:
        raise ConfigError("buf.dtype", str(buf.dtype), f"one of {[str(d) for d in SUPPORTED_DTYPES]}")
    if op == "mean" and buf.dtype.kind != "f":
        raise ConfigError(
            "op", op, f"'sum' for the integer dtype {buf.dtype}", "reduce with op='sum' and divide where you need to"
        )


def reference_allreduce(arrays: Sequence[np.ndarray], op: str = "sum") -> np.ndarray:
    """The defined result: rank-ordered element-wise sum in the arrays' dtype (``/ len(arrays)`` for
    ``mean``). ``arrays[r]`` is rank ``r``'s input, all of shape ``(n,)``."""
    out = reduce(lambda a, b: np.add(a, b, dtype=a.dtype), [np.asarray(a) for a in arrays]).copy()
    if op == "mean":
        out = np.divide(out, out.dtype.type(len(arrays)), dtype=out.dtype)
    return out
