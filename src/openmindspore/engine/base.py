"""The seam to a distributed execution engine.

The platform places, watches and kills *processes* (actors) through this interface and never imports
an engine directly elsewhere. Results come back as :class:`Outcome` values so callers handle a dead
process, a task error and success without engine-specific exception types.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openmindspore.errors import OMSError

__all__ = ["Engine", "Outcome", "ActorRef", "EngineError"]


class EngineError(OMSError, RuntimeError):
    """The engine could not start, connect or place processes (the CLI prints it as one line, exit 2)."""


@dataclass
class Outcome:
    """What became of a call: ``ok`` (value), ``dead`` (the process died) or ``error`` (it raised)."""

    status: str
    value: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ActorRef:
    """An engine-neutral handle to a long-lived process."""

    handle: Any
    name: str
    bundle: int | None = None
    pid: int | None = None


class Engine(abc.ABC):
    name: str = "engine"

    @abc.abstractmethod
    def start(self, address: str | None = None, num_cpus: int | None = None) -> None: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    @abc.abstractmethod
    def reserve(self, bundles: int, strategy: str = "PACK", timeout_s: float = 60.0) -> None:
        """Gang-reserve ``bundles`` process slots (one CPU each) before anything is placed; raises
        :class:`EngineError` at once when the cluster cannot ever hold them, after ``timeout_s`` when
        its CPUs stay taken."""

    @abc.abstractmethod
    def spawn(
        self,
        cls: type,
        *args: Any,
        name: str,
        bundle: int | None = None,
        concurrency: int = 4,
        env: dict[str, str] | None = None,
    ) -> ActorRef: ...

    @abc.abstractmethod
    def call(self, actor: ActorRef, method: str, *args: Any) -> Any:
        """Start ``actor.method(*args)``; returns a future."""

    @abc.abstractmethod
    def wait(self, futures: Sequence[Any], timeout: float | None, num: int = 1) -> tuple[list, list]:
        """Like ``ray.wait``: (ready futures, pending futures)."""

    @abc.abstractmethod
    def outcome(self, future: Any, timeout: float | None = 0) -> Outcome: ...

    @abc.abstractmethod
    def kill(self, actor: ActorRef) -> None: ...

    @abc.abstractmethod
    def free_cpus(self) -> float: ...

    def bundle_nodes(self) -> list[tuple[str, float] | None]:
        """Per reserved bundle: ``(node id, CPUs of that node)`` where the engine placed it, or ``None``
        when the engine does not say (then callers assume one node)."""
        return []

    def node_ips(self) -> dict[str, str]:
        """The IP address of each live node, by node id (empty when the engine does not say: one node)."""
        return {}

    def get(self, future: Any, timeout: float | None = None) -> Any:
        out = self.outcome(future, timeout)
        if not out.ok:
            raise EngineError(f"remote call failed ({out.status}): {out.error}")
        return out.value
