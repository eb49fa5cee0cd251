"""openYuanrong as the engine, through its Python SDK ``yr`` (``pip install openmindspore[yuanrong]``).

Mapping: an actor is a stateful instance (``yr.instance(cls).options(InvokeOptions(...)).invoke``), a call
``instance.method.invoke``, a task ``yr.invoke(fn)``, a reservation a resource group. Futures are the
SDK's ``ObjectRef`` s wrapped in :class:`YrCall`, whose ``concurrent.futures.Future`` gives sub-second,
non-blocking waits (``yr.get`` takes whole seconds and, in local mode, returns ``None`` on a timeout
instead of raising; ``yr.wait(timeout=0)`` reports every ref as pending without looking).

Two modes. **Local** (no address): instances and tasks are threads of this process — no process
isolation, no placement, and a kill ends an instance (its in-flight calls resolve as ``dead``) but no
process. **Cluster** (``--address`` or ``YR_SERVER_ADDRESS``): a running openYuanrong deployment (its
function system and data system); unreachable addresses fail fast. :attr:`YuanrongEngine.capabilities`
says which, so callers that need processes (MindSpore worker groups) refuse local mode up front.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from openmindspore.engine.base import ActorRef, Capabilities, Engine, EngineError, Outcome, check_reachable

__all__ = ["YuanrongEngine", "YrCall", "cluster_address"]

_MILLICORES = 1000  # InvokeOptions.cpu is in thousandths of a CPU
_POLL_S = 0.05  # longest sleep between looks at a future (a kill from another thread ends a wait this soon)


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``$YR_SERVER_ADDRESS``, else None (local mode)."""
    return address or os.environ.get("YR_SERVER_ADDRESS") or None


class YrCall:
    """A call or task in flight: the SDK's ``ObjectRef``, its future (made once), and the actor it went to
    (``None`` for a task); ``dead`` is set when the actor was killed before the call finished."""

    def __init__(self, ref: Any = None, actor: ActorRef | None = None, dead: str = "") -> None:
        self.ref, self.actor, self.dead = ref, actor, dead
        self.future: cf.Future = ref.get_future() if ref is not None else _finished()

    def leaf(self) -> cf.Future:
        """The future that holds the answer: local mode answers some calls with a future of a future."""
        f = self.future
        while f.done() and f.exception() is None and isinstance(f.result(), cf.Future):
            f = f.result()
        return f

    def done(self) -> bool:
        return bool(self.dead) or self.leaf().done()

    def settle(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: for ever) for the answer (or for a kill)."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            cf.wait([self.leaf()], timeout=_POLL_S if left is None else min(left, _POLL_S))


def _finished() -> cf.Future:
    f: cf.Future = cf.Future()
    f.set_result(None)
    return f


class YuanrongEngine(Engine):
    name = "yuanrong"

    def __init__(self) -> None:
        self._address: str | None = None
        self._started = self._owns = False
        self._group: Any = None
        self._inflight: dict[int, list[YrCall]] = {}  # id(actor handle) -> its calls not yet seen done
        self._lock = threading.Lock()
        self._tasks: dict[float, Any] = {}

    def start(self, address: str | None = None, num_cpus: int | None = None) -> None:
        if self._started:
            return
        try:
            import yr
        except ImportError:
            raise EngineError(
                "--engine yuanrong needs openYuanrong's Python SDK (`import yr` failed); "
                "pip install 'openmindspore[yuanrong]', or use the default --engine ray"
            ) from None
        flag = "--address" if address else "YR_SERVER_ADDRESS"
        address = cluster_address(address)
        if address is not None:
            check_reachable(address, "a running openYuanrong cluster's function system", flag=flag)
        self._owns = not yr.is_initialized()
        if self._owns:
            if address is None:
                yr.init(yr.Config(local_mode=True))
            else:
                ds = os.environ.get("YR_DS_ADDRESS", "")
                yr.init(yr.Config(server_address=address, ds_address=ds))
        self._address, self._started = address, True

    def shutdown(self) -> None:
        if not self._started:
            return
        import yr

        if self._group is not None:
            yr.remove_resource_group(self._group)
            self._group = None
        if self._owns:  # a runtime someone else initialised stays up
            yr.finalize()
        self._started, self._tasks = False, {}

    @property
    def capabilities(self) -> Capabilities:
        remote = self._address is not None
        return Capabilities(process_isolation=remote, placement=remote, kill_process=remote, cluster=remote)

    def reserve(self, bundles: int, strategy: str = "PACK", timeout_s: float = 60.0) -> None:
        if self._address is None:
            return None  # local mode: threads of this process, nothing to reserve
        import yr

        try:
            self._group = yr.create_resource_group([{"CPU": float(_MILLICORES)}] * bundles, strategy=strategy)
            self._group.wait(int(max(1, timeout_s)))
        except Exception as e:  # noqa: BLE001 - the SDK raises plain RuntimeErrors
            raise EngineError(
                f"could not reserve {bundles} CPU slots ({strategy}) on openYuanrong: {str(e).splitlines()[0][:200]}"
            ) from None

    def spawn(
        self,
        cls: type,
        *args: Any,
        name: str,
        bundle: int | None = None,
        concurrency: int = 4,
        env: dict[str, str] | None = None,
    ) -> ActorRef:
        import yr

        opts = yr.InvokeOptions(cpu=_MILLICORES, concurrency=concurrency, env_vars=dict(env or {}))
        if bundle is not None and self._group is not None:
            opts.resource_group_options = yr.ResourceGroupOptions(
                resource_group_name=self._group.resource_group_name, bundle_index=bundle
            )
        handle = yr.instance(cls).options(opts).invoke(*args)
        return ActorRef(handle=handle, name=name, bundle=bundle)

    def call(self, actor: ActorRef, method: str, *args: Any) -> YrCall:
        try:
            ref = getattr(actor.handle, method).invoke(*args)
        except RuntimeError as e:  # "this instance is terminated"
            return YrCall(actor=actor, dead=f"{actor.name}: {e}")
        call = YrCall(ref, actor)
        with self._lock:
            calls = self._inflight.setdefault(id(actor.handle), [])
            calls[:] = [c for c in calls if not c.done()]
            calls.append(call)
        return call

    def submit(self, fn: Callable[..., Any], *args: Any, cpus: float = 1) -> YrCall:
        import yr

        task = self._tasks.get(cpus)
        if task is None:  # one function proxy per CPU count (yr.invoke takes plain functions only)
            task = self._tasks[cpus] = yr.invoke(_call).options(yr.InvokeOptions(cpu=int(cpus * _MILLICORES)))
        return YrCall(task.invoke(fn, *args))

    def wait(self, futures: Sequence[Any], timeout: float | None, num: int = 1) -> tuple[list, list]:
        futures = list(futures)
        num = min(num, len(futures))
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            ready = [f for f in futures if f.done()]
            left = None if deadline is None else deadline - time.monotonic()
            if len(ready) >= num or (left is not None and left <= 0):
                break
            pending = [f.leaf() for f in futures if not f.done()]
            cf.wait(pending, timeout=_POLL_S if left is None else min(left, _POLL_S), return_when=cf.FIRST_COMPLETED)
        ready = ready[:num]
        return ready, [f for f in futures if all(f is not r for r in ready)]

    def outcome(self, future: Any, timeout: float | None = 0) -> Outcome:
        call: YrCall = future
        call.settle(timeout)
        if call.dead:
            return Outcome("dead", error=call.dead)
        leaf = call.leaf()
        if not leaf.done():
            return Outcome("pending")
        err = leaf.exception()
        if err is not None:
            return Outcome("error", error=str(err)[-500:])
        return Outcome("ok", leaf.result())

    def kill(self, actor: ActorRef) -> None:
        with self._lock:
            calls = self._inflight.pop(id(actor.handle), [])
        for c in calls:
            if not c.done():  # killed before it finished: its (None) result is not an answer
                c.dead = f"{actor.name} was killed"
        try:
            actor.handle.terminate()
        except Exception:  # noqa: BLE001 - already terminated is fine
            pass

    def free_cpus(self) -> float:
        if self._address is None:
            return float(os.cpu_count() or 1)
        import yr

        return sum(float(n.get("allocatable", {}).get("CPU", 0.0)) for n in yr.resources()) / _MILLICORES


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
