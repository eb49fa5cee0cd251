"""openYuanrong as the engine (experimental, local mode).

openYuanrong's Python SDK (``yr``) exposes stateful instances through ``@yr.instance`` and
``yr.get``/``yr.wait``, which map one-to-one on this seam. It is not on PyPI for this platform, so the
engine reports clearly when the SDK is missing instead of failing deep inside a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openmindspore.engine.base import ActorRef, Engine, EngineError, Outcome

__all__ = ["YuanrongEngine"]


class YuanrongEngine(Engine):
    name = "yuanrong"

    def start(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import yr
        except ImportError:
            raise EngineError(
                "--engine yuanrong needs openYuanrong's Python SDK (`import yr` failed); "
                "install openYuanrong, or use the default --engine ray"
            ) from None
        yr.init(yr.Config(local_mode=address is None, server_address=address or ""))

    def shutdown(self) -> None:
        import yr

        yr.finalize()

    def reserve(self, bundles: int, strategy: str = "PACK", timeout_s: float = 60.0) -> None:
        return None  # local mode: no gang reservation

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

        return ActorRef(handle=yr.instance(cls).invoke(*args), name=name, bundle=bundle)

    def call(self, actor: ActorRef, method: str, *args: Any) -> Any:
        return getattr(actor.handle, method).invoke(*args)

    def wait(self, futures: Sequence[Any], timeout: float | None, num: int = 1) -> tuple[list, list]:
        import yr

        return yr.wait(list(futures), wait_num=min(num, len(futures)), timeout=-1 if timeout is None else timeout)

    def outcome(self, future: Any, timeout: float | None = 0) -> Outcome:
        import yr

        try:
            return Outcome("ok", yr.get(future, timeout=-1 if timeout is None else max(1, int(timeout))))
        except Exception as e:  # noqa: BLE001 - the SDK has no stable exception hierarchy
            return Outcome("error", error=str(e)[:300])

    def kill(self, actor: ActorRef) -> None:
        actor.handle.terminate()

    def free_cpus(self) -> float:
        return 0.0
