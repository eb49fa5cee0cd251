"""The seam to a distributed execution engine.

The platform places, watches and kills *processes* (actors) through this interface and never imports
an engine directly elsewhere. Results come back as :class:`Outcome` values so callers handle a dead
process, a task error and success without engine-specific exception types. What a backend can do
differs (openYuanrong's local mode runs everything as threads of the calling process):
:class:`Capabilities` says so, and callers check it instead of guessing.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openmindspore.errors import ConfigError, OMSError

__all__ = ["Engine", "Outcome", "ActorRef", "EngineError", "Capabilities", "check_reachable"]


class EngineError(OMSError, RuntimeError):
    """The engine could not start, connect or place processes (the CLI prints it as one line, exit 2)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``process_isolation``: actors and tasks run in their own processes (a crash or
    a MindSpore communication group cannot leak into the caller); ``placement``: gang reservation of CPU
    slots on chosen nodes; ``kill_process``: an actor is a process that a signal can kill; ``cluster``:
    connected to a multi-node cluster rather than running on this machine only."""

    process_isolation: bool
    placement: bool
    kill_process: bool
    cluster: bool


def check_reachable(address: str, what: str, timeout: float = 3.0, flag: str = "--address") -> None:
    """Fail fast (instead of an engine's long retry loop) when ``host:port`` does not accept connections;
    ``what`` names the cluster for the error ("a running Ray cluster's head (ray start --head)"), ``flag`` where
    the address came from (``--address`` or an environment variable)."""
    hostport = address.split("://")[-1].split(",")[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        raise ConfigError(
            flag,
            address,
            f"HOST:PORT of {what}",
            f"cannot connect ({e}); start the cluster or omit {flag} for a local one",
        ) from None


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
    """Places, calls, watches and kills processes (actors) and runs stateless tasks; see the module doc."""

    name: str = "engine"

    @abc.abstractmethod
    def start(self, address: str | None = None, num_cpus: int | None = None) -> None: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend can do, once started (``cluster`` depends on the address it joined)."""

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any, cpus: float = 1) -> Any:
        """Run the stateless task ``fn(*args)`` on ``cpus`` CPUs; returns a future (see :meth:`wait`,
        :meth:`outcome`). ``fn`` and the arguments must be picklable."""

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

    def total_cpus(self) -> float:
        """CPUs of the whole cluster, free or not (default: :meth:`free_cpus`)."""
        return self.free_cpus()

    @property
    def owns_cluster(self) -> bool:
        """The cluster was started by this process (embedded), not joined: it holds nobody else's work."""
        return True

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
