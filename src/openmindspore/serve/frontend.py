"""``FrontEnd``: a Ray Serve deployment whose replicas serve the OIP REST API on ``host:port`` themselves.

The request path is HTTP -> front end (uvicorn + httptools, raw ASGI ``OIPApp``: validation,
dynamic batching, 429) -> one Ray actor call to a model replica (``ReplicaPool``). Ray Serve's own
HTTP proxy is not on the path (``Server`` starts Serve with ``proxy_location="Disabled"``), and
neither is the ``DeploymentHandle`` router (see ``replicas.py`` for the measurements).

Every front-end replica binds the same port with ``SO_REUSEPORT``, so ``num_replicas = N``
(``oms serve --frontends N``) gives N processes the kernel spreads connections over. Routes arrive
as the deployment's ``user_config`` (``reconfigure``; a ``config.Routes`` as JSON): Ray Serve applies a
changed ``user_config`` to every running replica in place, and a replica that Serve starts to replace a
dead one gets the latest routes, so no other store is needed. Each front end batches on its own (its queue bound and
in-flight limit are per front end); ``/metrics`` on any of them sums all front ends' registries.
``reconfigure`` returns only once the versions it removed have drained (their queued and in-flight
batches finished), which is what ``Server.unload`` waits for before deleting the version's replicas.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from ray import serve

from openmindspore.serve.config import Dispatch, Routes
from openmindspore.serve.deployments import HEALTH_CHECK
from openmindspore.serve.http_app import OIPApp
from openmindspore.serve.metrics import ServeMetrics, merge_expositions
from openmindspore.serve.replicas import ReplicaPool
from openmindspore.serve.routes import RouteTable

__all__ = ["FrontEnd", "FrontEndReplica", "FRONTEND_ENV", "listen_socket"]

log = logging.getLogger("openmindspore.serve")

#: The front end's event loop is the replica's own loop: user code and the (handle-mode) router on it,
#: no cross-thread hop per request.
FRONTEND_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def listen_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket with ``SO_REUSEPORT`` (several front-end processes share the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class FrontEndReplica:
    """One front-end process: uvicorn on a shared ``SO_REUSEPORT`` socket, routes from ``user_config``."""

    # Ray Serve awaits an async constructor; mypy requires __init__ to return None
    async def __init__(  # type: ignore[misc]
        self, host: str, port: int, retry_timeout_s: float = 60.0, dispatch: Dispatch = "direct"
    ) -> None:
        import uvicorn

        logging.getLogger("openmindspore").setLevel(logging.INFO)
        self.retry_timeout_s = retry_timeout_s
        self.metrics = ServeMetrics()
        self.routes = RouteTable(self.metrics, retry_timeout_s, dispatch)
        self.app = OIPApp(self.routes, self.metrics, self._all_metrics)
        import ray

        self._name = ray.get_runtime_context().get_actor_name()
        self._peers = ReplicaPool(serve.get_replica_context().app_name, "FrontEnd", method="metrics_text")
        self._sock = listen_socket(host, port)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_level="warning",
            http="httptools",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why uvicorn could not start
                raise RuntimeError(f"the HTTP server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.01)
        log.info("front end pid=%d serving http://%s:%d (dispatch=%s)", os.getpid(), host, port, dispatch)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Install the routes pushed by ``Server`` (``Routes`` as JSON); wait until removed versions have drained."""
        removed = self.routes.apply(Routes.model_validate(user_config))
        for ov in removed:
            log.info("model=%s version=%s removed from routes; draining", ov.model, ov.version)
        if removed:
            await asyncio.gather(*(ov.batcher.drain(self.retry_timeout_s) for ov in removed))

    def metrics_text(self) -> bytes:
        """This front end's own Prometheus exposition."""
        return self.metrics.render()

    async def _all_metrics(self) -> bytes:
        """``/metrics``: this front end's metrics plus every other front end's, summed."""
        others = await self._peers.call_each("metrics_text", exclude=self._name)
        return merge_expositions([self.metrics.render(), *others]) if others else self.metrics.render()

    def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError("the front end's HTTP server stopped")

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "models": self.routes.describe()}

    async def __del__(self) -> None:
        """Graceful shutdown: refuse new work (503), finish what is queued and in flight, close the socket."""
        self.app.draining = True
        await asyncio.gather(
            *(v.batcher.drain(self.retry_timeout_s) for v in self.routes.all_versions()), return_exceptions=True
        )
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 5.0)
        except (TimeoutError, Exception):  # noqa: BLE001 - shutting down anyway
            pass
        self._sock.close()


#: the Ray Serve deployment of ``FrontEndReplica`` (its replicas' actor names say ``FrontEnd``)
FrontEnd = serve.deployment(
    name="FrontEnd",
    max_ongoing_requests=16,
    graceful_shutdown_timeout_s=30,
    graceful_shutdown_wait_loop_s=0.5,
    **HEALTH_CHECK,
)(FrontEndReplica)
