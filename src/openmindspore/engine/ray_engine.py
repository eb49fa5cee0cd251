"""Ray as the engine: an embedded local cluster by default, or ``address`` to join a running one.

Owns the connection to Ray (started or joined) and the run's placement group. An explicit ``address`` wins
over ``RAY_ADDRESS`` (set by ``ray job submit`` for its entrypoint), which wins over an embedded cluster;
joining prints one line naming the cluster (:func:`cluster_address`).

The user's own code (a model ``class_path`` outside the installed packages) reaches the worker processes
through Ray's ``runtime_env``: the Python modules and packages of every folder in ``OMS_CODE_PATH`` (set
by ``openmindspore.train.usercode``) are shipped as ``py_modules``, on a real cluster as on the embedded one.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openmindspore.engine.base import ActorRef, Capabilities, Engine, EngineError, Outcome, check_reachable
from openmindspore.errors import ConfigError

__all__ = ["RayEngine", "cluster_address", "user_modules"]

log = logging.getLogger(__name__)


def cluster_address(address: str | None = None) -> str | None:
    """The Ray cluster to join: ``address`` (``--address``) when given, else ``$RAY_ADDRESS`` (as ``ray job
    submit`` sets it), else None (an embedded local cluster; also for Ray's own ``local``, "start a new one")."""
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    return None if chosen == "local" else chosen


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block (processes started in it inherit them), then as before."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _joined_line(address: str, explicit: bool) -> str:
    """One line naming the cluster just joined: its address, where it came from, its nodes and CPUs."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = float(ray.cluster_resources().get("CPU", 0.0))
    free = float(ray.available_resources().get("CPU", 0.0))
    source = "--address" if explicit else "RAY_ADDRESS"
    return (
        f"oms: joined the Ray cluster at {address} ({source}): {len(nodes)} node{'s' if len(nodes) != 1 else ''}, "
        f"{total:g} CPUs ({free:g} free)"
    )


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
        self._tasks: dict[float, Any] = {}

    @property
    def owns_cluster(self) -> bool:
        """The cluster was started here (embedded), not joined: stopping it stops nobody else's work."""
        return self._owns_cluster

    def start(self, address: str | None = None, num_cpus: int | None = None) -> None:
        """Join ``address`` (or ``$RAY_ADDRESS``; ``num_cpus`` is then the cluster's business) or start an
        embedded cluster of ``num_cpus`` CPUs. No-op when Ray is already initialised in this process."""
        import ray

        if ray.is_initialized():
            return
        explicit = bool(address) and address != os.environ.get("RAY_ADDRESS")  # for messages: where it came from
        address = cluster_address(address)
        flag = "--address" if explicit else "RAY_ADDRESS"
        if address and address != "auto":
            check_reachable(address, "a running Ray cluster's head (ray start --head)", flag=flag)
        env_vars = {"GLOG_v": os.environ.get("GLOG_v", "3"), "PYTHONWARNINGS": "ignore"}
        env: dict[str, Any] = {"env_vars": env_vars}
        modules = user_modules()
        if modules:
            env["py_modules"] = modules
            log.info("shipping the user's code to the workers: %s", modules)
        try:
            if address:
                ray.init(address=address, runtime_env=env, logging_level=logging.ERROR, log_to_driver=False)
                print(_joined_line(address, explicit), file=sys.stderr, flush=True)
            else:
                # embedded: the node's processes inherit this process's environment, and the workers the
                # node's, so the variables go there; a runtime_env of env_vars alone would start every worker
                # through Ray's setup_worker (~0.5 CPU-s more each) and the runtime-env agent
                with _environment(env_vars):
                    self._init_embedded(num_cpus, {"py_modules": modules} if modules else None)
                self._owns_cluster = True
        except (ConnectionError, TimeoutError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as e:
            token = (
                "RAY_AUTH_MODE=token and the head's token (RAY_AUTH_TOKEN or ~/.ray/auth_token; `ray get-auth-token`"
            )
            if isinstance(e, ray.exceptions.AuthenticationError) or "token" in str(e).lower():
                fix = f"the cluster refused the token: set {token} on the head prints it)"
            else:
                fix = f"could not connect: {str(e).splitlines()[0][:200]}"
                if address and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                    fix += f"; Ray 2.60 clusters use token authentication: set {token} on the head prints it)"
            raise ConfigError(flag, address, "the address of a running Ray cluster (ray start --head)", fix) from None

    @staticmethod
    def _init_embedded(num_cpus: int | None, runtime_env: dict[str, Any] | None) -> None:
        import ray

        ray.init(
            address="local",  # embedded: a new cluster, even when `ray start` left one on this host
            num_cpus=num_cpus,
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
            # no idle workers pre-started for this driver: they took the raylet's start-up slots
            # (as many as CPUs) from the actors' own workers, ~8 s later to the first step
            _system_config={"prestart_worker_first_driver": False},
        )

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()

    @property
    def capabilities(self) -> Capabilities:
        import ray

        nodes = len([n for n in ray.nodes() if n.get("Alive")]) if ray.is_initialized() else 1
        return Capabilities(process_isolation=True, placement=True, kill_process=True, cluster=nodes > 1)

    def submit(self, fn: Callable[..., Any], *args: Any, cpus: float = 1) -> Any:
        import ray

        remote = self._tasks.get(cpus)
        if remote is None:  # one remote function per CPU count: Ray exports it once, not per task
            remote = self._tasks[cpus] = ray.remote(num_cpus=cpus, max_retries=0)(_call)
        return remote.remote(fn, *args)

    def reserve(self, bundles: int, strategy: str = "PACK", timeout_s: float = 60.0) -> None:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        slots = f"{bundles} CPU slot{'s' if bundles != 1 else ''}"
        total = self.total_cpus()
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

    def total_cpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("CPU", 0.0))


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
