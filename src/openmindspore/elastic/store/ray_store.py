"""``--snapshot-store ray``: snapshots as engine objects owned by the driver (the behaviour before the seam).

Owns the driver's references to its snapshots (step -> the engine future of a member's ``snapshot`` call,
whose value, a ``TrainState``, the engine keeps in its object store; the newest ``keep``, and the newest
finished one while every newer one is still being made). They are lost
with the driver: this store does not outlive it, and a ``--resume`` after a driver crash starts from the
newest disk checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from openmindspore.elastic.store.base import Capabilities, StoreKind, newest_readable, retained

if TYPE_CHECKING:
    from openmindspore.engine import Engine
    from openmindspore.train.state import TrainState

__all__ = ["RayStore"]


class RayStore:
    """Driver-owned engine objects (see the module docstring)."""

    name: StoreKind = "ray"
    capabilities = Capabilities(outlives_driver=False, shared_memory=False, spills=False, verified=False)

    def __init__(self, engine: Engine, keep: int = 2) -> None:
        self.engine, self.keep = engine, keep
        self.refs: dict[int, Any] = {}

    def request(self, step: int) -> tuple[str, tuple[Any, ...]]:
        return "snapshot", (step,)

    def record(self, step: int, answer: Any) -> None:
        self.refs[step] = answer
        steps = sorted(self.refs)
        if len(steps) <= self.keep:
            return
        done, _ = self.engine.wait([self.refs[s] for s in steps], timeout=0, num=len(steps))
        kept = retained(steps, [s for s in steps if self.refs[s] in done], self.keep)
        self.refs = {s: self.refs[s] for s in kept}

    def wait(self, step: int, timeout: float) -> None:
        if step in self.refs:
            self.engine.wait([self.refs[step]], timeout=timeout)

    def steps(self) -> list[int]:
        return sorted(self.refs)

    def latest(self, newer_than: int = -1, timeout: float = 10.0) -> tuple[int, TrainState] | None:
        return newest_readable(self, newer_than, timeout)

    def get(self, step: int, timeout: float = 300.0) -> TrainState | None:
        return self.reader(step)(timeout)

    def reader(self, step: int) -> Callable[[float], TrainState | None]:
        ref = self.refs.get(step)

        def read(timeout: float) -> TrainState | None:
            if ref is None:
                return None
            out = self.engine.outcome(ref, timeout=timeout)
            return out.value if out.ok else None

        return read

    def drop(self, step: int) -> None:
        self.refs.pop(step, None)

    def forget_after(self, step: int) -> None:
        self.refs = {s: r for s, r in self.refs.items() if s <= step}

    def check(self) -> str | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name}

    def close(self, completed: bool) -> None:
        self.refs.clear()
