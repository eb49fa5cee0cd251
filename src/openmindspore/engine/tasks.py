"""Parallel stateless tasks on the engine (used by automatic modeling and ablations).

``parallel_map(fn, items, workers)`` runs ``fn`` on each item and returns the results in item order:
sequentially in this process when ``workers <= 1``, otherwise as Ray remote tasks (one CPU each),
joining ``$RAY_ADDRESS`` or starting an embedded local Ray cluster when none is initialised. A cluster
started here is kept for the next call (a search maps many batches) and stopped by :func:`shutdown` (the
search calls it in a ``finally``). ``fn`` and the items must be picklable; ``fn`` should catch its own exceptions (a
raised exception propagates and fails the whole map).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["parallel_map", "shutdown"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_OWNED = {"started": False}


def parallel_map(fn: Callable[[Any], T], items: Sequence[Any], workers: int = 1) -> list[T]:
    """``[fn(x) for x in items]``, on up to ``workers`` processes (Ray tasks) when ``workers > 1``."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    import ray

    if not ray.is_initialized():
        from openmindspore.engine.ray_engine import RayEngine

        log.info("starting Ray: $RAY_ADDRESS if set, else an embedded cluster with %d CPUs", workers)
        RayEngine().start(num_cpus=workers)
        _OWNED["started"] = True
    remote: Any = ray.remote(num_cpus=1, max_retries=0)(_call)
    return ray.get([remote.remote(fn, x) for x in items])


def _call(fn: Callable[[Any], T], x: Any) -> T:
    return fn(x)


def shutdown() -> None:
    """Stop the Ray cluster if :func:`parallel_map` started it (no-op otherwise)."""
    if _OWNED["started"]:
        import ray

        ray.shutdown()
        _OWNED["started"] = False
