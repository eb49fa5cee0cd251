"""Parallel stateless tasks on the engine (used by automatic modeling, ablations and active learning).

``parallel_map(fn, items, workers, engine="ray")`` runs ``fn`` on each item and returns the results in item
order: sequentially in this process when ``workers <= 1``, otherwise as engine tasks (:meth:`Engine.submit`,
one CPU each, at most ``workers`` in flight), starting the engine when it is not running (Ray: the cluster of
``$RAY_ADDRESS``, else an embedded one with ``workers`` CPUs; openYuanrong: the cluster of ``$YR_SERVER_ADDRESS``,
else local mode).
An engine started here is kept for the next call (a search maps many batches) and stopped by
:func:`shutdown` (callers call it in a ``finally``). ``fn`` and the items must be picklable; ``fn`` should
catch its own exceptions (a raised one fails the whole map, with the remote message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from openmindspore.engine.base import Engine, EngineError

__all__ = ["parallel_map", "shutdown"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_STARTED: dict[str, Engine] = {}  # engine name -> the engine this module started


def _engine(name: str, workers: int) -> Engine:
    if name in _STARTED:
        return _STARTED[name]
    from openmindspore.engine import get_engine

    eng = get_engine(name)
    if eng.name == "ray":
        import ray

        if ray.is_initialized():  # the caller's cluster: use it, leave it running
            return eng
    log.info("starting the %s engine for %d parallel tasks", eng.name, workers)
    eng.start(None, num_cpus=workers)
    _STARTED[eng.name] = eng
    return eng


def parallel_map(fn: Callable[[Any], T], items: Sequence[Any], workers: int = 1, engine: str = "ray") -> list[T]:
    """``[fn(x) for x in items]``, as up to ``workers`` concurrent tasks on ``engine`` when ``workers > 1``."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    eng = _engine(engine, workers)
    results: dict[int, T] = {}
    inflight: dict[Any, int] = {}
    todo = iter(enumerate(items))
    while len(results) < len(items):
        for i, x in todo:
            inflight[eng.submit(fn, x)] = i
            if len(inflight) >= workers:
                break
        ready, _ = eng.wait(list(inflight), timeout=None, num=1)
        for fut in ready:
            out = eng.outcome(fut, timeout=None)
            if not out.ok:
                raise EngineError(f"a parallel task failed on {eng.name} ({out.status}): {out.error}")
            results[inflight.pop(fut)] = out.value
    return [results[i] for i in range(len(items))]


def shutdown() -> None:
    """Stop the engines :func:`parallel_map` started (no-op otherwise)."""
    while _STARTED:
        _, eng = _STARTED.popitem()
        eng.shutdown()
