"""Ray as the engine: an embedded local cluster by default, or ``address`` to join a running one.

The user's own code (a model ``class_path`` outside the installed packages) reaches the worker processes
through Ray's ``runtime_env``: the Python modules and packages of every folder in ``OMS_CODE_PATH`` (set
by ``openmindspore.train.usercode``) are shipped as ``py_modules``, on a real cluster as on the embedded one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openmindspore.engine.base import ActorRef, Engine, EngineError, Outcome
from openmindspore.errors import ConfigError

__all__ = ["RayEngine", "user_modules"]

log = logging.getLogger(__name__)


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast (instead of Ray's long retry loop) when ``host:port`` does not accept connections."""
    import socket

    hostport = address.split("://")[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        raise ConfigError(
            "--address",
            address,
            "HOST:PORT of a running Ray cluster's head (ray start --head)",
            f"cannot connect ({e}); start the cluster or omit --address for a local one",
        ) from None


def user_modules(code_path: str | None = None) -> list[str]:
    """The top-level Python modules (``*.py``) and packages (folders with Python files) of each folder in
    ``code_path`` (default: ``$OMS_CODE_PATH``): what the workers need to import the user's code as the
    driver does. Hidden and cache folders are left out."""
    text = os.environ.get("OMS_CODE_PATH", "") if code_path is None else code_path
    out: list[str] = []
    for folder in (Path(p) for p in text.split(os.pathsep) if p):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "__")):
                continue
            if (entry.is_file() and entry.suffix == ".py") or (entry.is_dir() and any(entry.glob("*.py"))):
                out.append(str(entry))
    return out


class RayEngine(Engine):
    name = "ray"

    def __init__(self) -> None:
        self._pg = None
        self._owns_cluster = False

    def start(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        if ray.is_initialized():
            return
        if address and address != "auto":
            _check_reachable(address)
        env: dict[str, Any] = {"env_vars": {"GLOG_v": os.environ.get("GLOG_v", "3"), "PYTHONWARNINGS": "ignore"}}
        modules = user_modules()
        if modules:
            env["py_modules"] = modules
            log.info("shipping the user's code to the workers: %s", modules)
        try:
            if address:
                ray.init(address=address, runtime_env=env, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(
                    address="local",  # a new embedded cluster, never one that `ray start` left on this host
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    runtime_env=env,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._owns_cluster = True
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            raise ConfigError(
                "--address",
                address,
                "the address of a running Ray cluster (ray start --head)",
                f"could not connect: {str(e).splitlines()[0][:200]}",
            ) from None

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()

    def reserve(self, bundles: int, strategy: str = "PACK", timeout_s: float = 60.0) -> None:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        slots = f"{bundles} CPU slot{'s' if bundles != 1 else ''}"
        total = float(ray.cluster_resources().get("CPU", 0.0))
        if bundles > total:
            raise EngineError(
                f"could not reserve {slots} ({strategy}): the cluster has {total:.0f} CPUs in all; "
                "use fewer --workers/--spares or add nodes"
            )
        pg = placement_group([{"CPU": 1}] * bundles, strategy=strategy)
        ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
        if not ready:
            remove_placement_group(pg)
            raise EngineError(
                f"could not reserve {slots} ({strategy}) within {timeout_s:.0f} s: the cluster has "
                f"{self.free_cpus():.0f} of {total:.0f} CPUs free; stop other jobs or use fewer --workers/--spares"
            )
        self._pg = pg

    def spawn(
        self,
        cls: type,
        *args: Any,
        name: str,
        bundle: int | None = None,
        concurrency: int = 4,
        env: dict[str, str] | None = None,
    ) -> ActorRef:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        opts: dict[str, Any] = {
            "max_concurrency": concurrency,
            "max_restarts": 0,
            "num_cpus": 1 if bundle is not None else 0,
        }
        if bundle is not None and self._pg is not None:
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self._pg, placement_group_bundle_index=bundle
            )
        if env:
            opts["runtime_env"] = {"env_vars": env}
        handle: Any = ray.remote(cls).options(**opts).remote(*args)
        return ActorRef(handle=handle, name=name, bundle=bundle)

    def call(self, actor: ActorRef, method: str, *args: Any) -> Any:
        return getattr(actor.handle, method).remote(*args)

    def wait(self, futures: Sequence[Any], timeout: float | None, num: int = 1) -> tuple[list, list]:
        import ray

        if not futures:
            return [], []
        return ray.wait(list(futures), num_returns=min(num, len(futures)), timeout=timeout)

    def outcome(self, future: Any, timeout: float | None = 0) -> Outcome:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError, WorkerCrashedError

        try:
            return Outcome("ok", ray.get(future, timeout=timeout))
        except GetTimeoutError:
            return Outcome("pending")
        except (RayActorError, WorkerCrashedError) as e:
            return Outcome("dead", error=str(e).splitlines()[0][:300])
        except RayTaskError as e:
            return Outcome("error", error=str(e.cause if hasattr(e, "cause") else e)[-500:])

    def kill(self, actor: ActorRef) -> None:
        import ray

        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception as e:  # noqa: BLE001 - already gone is fine
            log.debug("kill %s: %s", actor.name, e)

    def bundle_nodes(self) -> list[tuple[str, float] | None]:
        """Where the placement group's bundles landed: ``(node id, the node's CPU resource)`` each."""
        import ray
        from ray.util.placement_group import placement_group_table

        if self._pg is None:
            return []
        until = time.monotonic() + 5.0  # the table may name the bundles' nodes a moment after the group is ready
        while True:
            where = placement_group_table(self._pg).get("bundles_to_node_id", {})
            if len(where) >= len(self._pg.bundle_specs) or time.monotonic() > until:
                break
            time.sleep(0.05)
        cpus = {n["NodeID"]: float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")}
        return [(where[b], cpus.get(where[b], 0.0)) if b in where else None for b in range(len(self._pg.bundle_specs))]

    def node_ips(self) -> dict[str, str]:
        """Each live Ray node's IP (``NodeManagerAddress``), by node id."""
        import ray

        return {n["NodeID"]: str(n["NodeManagerAddress"]) for n in ray.nodes() if n.get("Alive")}

    def free_cpus(self) -> float:
        import ray

        return float(ray.available_resources().get("CPU", 0.0))
