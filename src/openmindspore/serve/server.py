"""``Server``: start Ray Serve, deploy model versions, switch traffic, roll back, shut down.

Each model version is its own Ray Serve application (``oms.<model>.<version>``, no HTTP route; on a joined
cluster ``oms-<port>.<model>.<version>``) running ``ModelReplica`` with R replicas. The HTTP front is the
``oms-frontend-<port>`` application: N ``FrontEnd`` replicas (default 1) that serve the Open Inference
Protocol on ``host:port`` themselves (``SO_REUSEPORT``), batch, and call model replicas directly; Ray
Serve's HTTP proxy is disabled. Loading a version never touches the versions already serving; switching is a routing
change pushed to the front ends as their ``user_config``, applied only after the new version's
replicas are running and have answered a metadata call. Removing a version first stops routing to
it and waits for its queue and in-flight batches to finish, then deletes its application. Shutting down on a
joined cluster deletes only this server's applications (never ``serve.shutdown()``: other users' stay).

::

    with Server(port=8000) as srv:
        srv.deploy("digits", "runs/digits", replicas=2)          # version "1", default
        srv.deploy("digits", "runs/digits-v2")                   # version "2": load, then switch
        srv.rollback("digits")                                   # back to "1"
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from openmindspore.errors import ConfigError, OMSError
from openmindspore.serve.config import (
    BatchingConfig,
    DeployConfig,
    Dispatch,
    ModelRoutes,
    Routes,
    ServerConfig,
    VersionConfig,
)
from openmindspore.serve.registry import resolve_source
from openmindspore.validation import validate

if TYPE_CHECKING:
    from openmindspore.engine.base import Engine

__all__ = ["Server", "BatchingConfig"]

log = logging.getLogger(__name__)

FRONTEND_APP = "oms-frontend"  # + "-<port>": several servers (ports) can share one Serve instance
_FRONTEND_VERSION = "oms-frontend-1"


class Server:
    """Ray Serve on an embedded local cluster (or ``address``) with ``frontends`` OIP front ends on ``host:port``
    (and ``grpc_port``).

    ``dispatch="direct"`` (default) sends batches straight to the replicas (over their local channel when on
    this node, else a Ray actor call); ``"actor"`` always makes the Ray actor call; ``"handle"`` goes
    through Ray Serve's ``DeploymentHandle`` router (slower; both kept for comparison). The arguments (and the
    keyword-only ``grpc_port``, ``auth_token_file``, ``max_request_mb``, ``request_timeout_s``, ``tls_cert``,
    ``tls_key``) are validated as a :class:`~openmindspore.serve.config.ServerConfig` (``self.config``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        address: str | None = None,
        num_cpus: int | None = None,
        retry_timeout_s: float = 60.0,
        frontends: int = 1,
        dispatch: Dispatch = "direct",
        **security: Any,
    ) -> None:
        args = dict(host=host, port=port, address=address, num_cpus=num_cpus, retry_timeout_s=retry_timeout_s)
        args.update(frontends=frontends, dispatch=dispatch, **security)
        config = validate(ServerConfig, args, where="server")
        self.config = config
        self.host, self.port, self.address, self.num_cpus = config.host, config.port, config.address, config.num_cpus
        self.retry_timeout_s, self.frontends, self.dispatch = config.retry_timeout_s, config.frontends, config.dispatch
        self._routes = Routes()
        self._previous: dict[str, list[str]] = {}  # model -> earlier defaults (rollback stack)
        self._counter: dict[str, int] = {}  # model -> highest numeric version ever used
        self._engine: Engine | None = None
        self._node_resource: dict[str, float] = {}

    # --------------------------------------------------------------- life
    @property
    def url(self) -> str:
        return f"{self.config.scheme}://{self.host}:{self.port}"

    @property
    def grpc_target(self) -> str | None:
        """``host:port`` of the gRPC endpoint (None without ``grpc_port``)."""
        return None if self.config.grpc_port is None else f"{self.host}:{self.config.grpc_port}"

    def start(self) -> Server:
        import ray
        from ray import serve

        from openmindspore.engine import get_engine

        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
        _check_port_free(self.host, self.port)
        if self.config.grpc_port is not None:
            _check_port_free(self.host, self.config.grpc_port, "--grpc-port")
        engine = get_engine("ray")
        engine.start(address=self.address, num_cpus=self.num_cpus)  # --address, else $RAY_ADDRESS, else embedded
        self._engine = engine
        # front ends bind host:port, so they run on this node (the node's own resource pins them)
        self._node_resource = {f"node:{ray.util.get_node_ip_address()}": 0.001}
        serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
        try:
            self._push()
        except Exception as e:  # noqa: BLE001 - Serve reports a failed deploy with its own exception types
            raise OMSError(
                f"the HTTP front end could not start on {self.url}: {str(e).strip().splitlines()[-1][:300]}"
            ) from None
        self._wait_http()
        log.info("serving on %s", self.url)
        return self

    def _wait_http(self, timeout_s: float = 60.0) -> None:
        import requests
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        deadline = time.monotonic() + timeout_s
        while True:
            try:  # our own front end on this machine: its certificate need not name the host
                if requests.get(self.url + "/v2/health/live", timeout=2, verify=False).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise OMSError(
                    f"the HTTP endpoint {self.url} did not come up within {timeout_s:.0f} s; "
                    "is the port free and the host an address of this machine?"
                )
            time.sleep(0.1)

    def shutdown(self) -> None:
        """Drain (Ray Serve calls each front end's graceful shutdown) and stop what this server runs: on its own
        embedded cluster all of Serve and the cluster; on a joined one (``address``, ``$RAY_ADDRESS``) only its
        own applications, the front end first, then its model versions; other users' applications and the
        Serve instance stay, and the cluster is only disconnected from."""
        import ray
        from ray import serve

        if not ray.is_initialized():  # never started (or already shut down): nothing to stop, nowhere to connect
            self._engine = None
            return
        try:
            if self._engine is None or self._engine.owns_cluster:
                serve.shutdown()
            else:
                for app in self.own_apps():
                    _safe_delete(app)
        finally:
            if self._engine is not None:
                self._engine.shutdown()
                self._engine = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ----------------------------------------------------------- versions
    def deploy(
        self,
        name: str,
        source: str,
        version: str | None = None,
        replicas: int = 1,
        batching: BatchingConfig | dict[str, Any] | None = None,
        activate: bool = True,
        inflight_per_replica: int = 1,
        replica_cpus: float = 0.0,
    ) -> str:
        """Load ``source`` as a new version of ``name`` beside the running ones; returns the version.

        With ``activate`` (default) traffic switches to it once its replicas are up; the previous
        default stays loaded for ``rollback``. The arguments after ``source`` are validated as a
        :class:`~openmindspore.serve.config.DeployConfig`.
        """
        args: dict[str, Any] = dict(name=name, version=version, replicas=replicas, activate=activate)
        args.update(inflight_per_replica=inflight_per_replica, replica_cpus=replica_cpus, batching=batching or {})
        config = validate(DeployConfig, args, where="deploy")
        resolved = resolve_source(source)
        from ray import serve

        from openmindspore.serve.deployments import ModelReplica

        m = self._routes.models.setdefault(name, ModelRoutes())
        version = config.version
        if version is None:
            version = str(max([self._counter.get(name, 0)] + [int(v) for v in m.versions if v.isdigit()]) + 1)
        if version.isdigit():
            self._counter[name] = max(self._counter.get(name, 0), int(version))
        if version in m.versions:
            raise ConfigError("version", version, f"a new version name (loaded: {sorted(m.versions)})")
        app = self._app_name(name, version)
        t0 = time.perf_counter()
        opts = ModelReplica.options(
            num_replicas=config.replicas,
            max_ongoing_requests=config.inflight_per_replica,
            ray_actor_options={"num_cpus": config.replica_cpus},
        )
        try:
            handle = serve.run(opts.bind(resolved), name=app, route_prefix=None)
            meta = handle.metadata.remote().result(timeout_s=120)
        except Exception as e:
            if not m.versions:
                del self._routes.models[name]
            _safe_delete(app)
            raise OMSError(
                f"model {name!r} version {version} from {source} failed to load: "
                f"{str(e).strip().splitlines()[-1][:300]}"
            ) from None
        log.info(
            "model=%s version=%s loaded (%d replicas) in %.1f s",
            name,
            version,
            config.replicas,
            time.perf_counter() - t0,
        )
        m.versions[version] = VersionConfig(
            app=app,
            replicas=config.replicas,
            metadata=meta,
            batching=config.batching,
            inflight_per_replica=config.inflight_per_replica,
            source=str(source),
        )
        if m.default is None or config.activate:
            self._switch_to(name, version)
        else:
            self._push()
        return version

    def switch(self, name: str, version: str) -> None:
        """Route ``name``'s default traffic to the loaded ``version``."""
        m = self._model(name)
        if str(version) not in m.versions:
            raise ConfigError("version", version, f"a loaded version of {name!r}: {sorted(m.versions)}")
        self._switch_to(name, str(version))

    def rollback(self, name: str) -> str:
        """Switch back to the version that was default before the current one; returns it."""
        m = self._model(name)
        history = [v for v in self._previous.get(name, []) if v in m.versions and v != m.default]
        if not history:
            raise ConfigError(
                "rollback",
                name,
                "a model with an earlier version still loaded",
                "deploy with activate=False to keep a version for rollback, or load one",
            )
        target = history[-1]
        self._previous[name] = [v for v in self._previous[name] if v != target]
        m.default = target
        self._push()
        return target

    def unload(self, name: str, version: str) -> None:
        """Stop routing to ``version`` (not the default), wait for its requests, delete its replicas."""
        m = self._model(name)
        version = str(version)
        if version not in m.versions:
            raise ConfigError("version", version, f"a loaded version of {name!r}: {sorted(m.versions)}")
        if version == m.default:
            raise ConfigError(
                "version", version, "a version that is not the default", "switch or roll back to another version first"
            )
        cfg = m.versions.pop(version)
        self._push()  # returns after the front ends drained the version
        _safe_delete(cfg.app)

    def versions(self, name: str) -> dict[str, Any]:
        m = self._model(name)
        return {"default": m.default, "versions": sorted(m.versions)}

    def replica_pids(self, name: str, version: str | None = None, timeout_s: float = 30.0) -> list[int]:
        """The PIDs of a version's live, initialized replica processes (asked directly, not through the router)."""
        from openmindspore.serve.replicas import call_each_replica

        m = self._model(name)
        cfg = m.versions[str(version or m.default)]
        return sorted(set(call_each_replica(cfg.app, cfg.deployment, "pid", timeout_s=timeout_s)))

    # ------------------------------------------------------------ helpers
    def _model(self, name: str) -> ModelRoutes:
        if name not in self._routes.models:
            raise ConfigError("model", name, f"a served model: {sorted(self._routes.models)}")
        return self._routes.models[name]

    def _switch_to(self, name: str, version: str) -> None:
        m = self._routes.models[name]
        if m.default is not None and m.default != version:
            self._previous.setdefault(name, []).append(m.default)
        m.default = version
        self._push()

    def _push(self) -> None:
        """Deploy the front ends with the current routes as ``user_config`` (in place when they run).

        Returns once every front end applied the routes and drained the versions they removed.
        """
        from ray import serve

        from openmindspore.serve.frontend import FRONTEND_ENV, FrontEnd

        routes = self._routes.routed().model_dump(mode="json")
        # A fixed code version makes a routes change a ``reconfigure`` of the running front ends; without
        # it every ``serve.run`` gets a random version and Serve replaces (restarts) them.
        opts = FrontEnd.options(
            num_replicas=self.frontends,
            user_config=routes,
            version=_FRONTEND_VERSION,
            _internal=True,
            ray_actor_options={
                "num_cpus": 0,
                "resources": self._node_resource,
                "runtime_env": {"env_vars": FRONTEND_ENV},
            },
        )
        serve.run(
            opts.bind(self.config.model_dump(mode="json")),
            name=self.frontend_app,
            route_prefix=None,
        )

    @property
    def frontend_app(self) -> str:
        return f"{FRONTEND_APP}-{self.port}"

    def own_apps(self) -> list[str]:
        """The Serve applications this server deployed: its front end, then every loaded model version."""
        versions = [v.app for m in self._routes.models.values() for v in m.versions.values()]
        return [self.frontend_app, *versions]

    def _app_name(self, name: str, version: str) -> str:
        """``oms.<model>.<version>``; on a joined cluster ``oms-<port>.<model>.<version>``, so that servers of
        other users (other ports) that load the same model name never replace each other's versions."""
        joined = self._engine is not None and not self._engine.owns_cluster
        return f"oms{f'-{self.port}' if joined else ''}.{name}.{version}"

    def frontend_pids(self, timeout_s: float = 30.0) -> list[int]:
        """The PIDs of the front-end processes (asks until all have answered)."""
        from ray import serve

        handle = serve.get_deployment_handle("FrontEnd", app_name=self.frontend_app)
        pids: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(pids) < self.frontends and time.monotonic() < deadline:
            pids |= {r.result()["pid"] for r in [handle.describe.remote() for _ in range(4 * self.frontends)]}
        return sorted(pids)


def _check_port_free(host: str, port: int, flag: str = "--port") -> None:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(
                flag,
                port,
                f"a free port on {host}",
                f"it is taken or not bindable ({e.strerror}); pick another {flag}",
            ) from None


def _safe_delete(app: str) -> None:
    from ray import serve

    try:
        serve.delete(app)
    except Exception as e:  # noqa: BLE001 - best effort cleanup
        log.warning("could not delete application %s: %s", app, e)
