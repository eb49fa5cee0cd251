"""``FrontEnd``: a Ray Serve deployment whose replicas serve the OIP (REST, and gRPC) on ``host:port`` themselves.

The request path is HTTP -> front end (uvicorn + httptools, raw ASGI ``OIPApp``; or ``grpc.aio``
``OIPServicer``: validation, dynamic batching, 429) -> one Ray actor call to a model replica
(``ReplicaPool``). Ray Serve's own HTTP proxy is not on the path (``Server`` starts Serve with
``proxy_location="Disabled"``), and neither is the ``DeploymentHandle`` router (see ``replicas.py``).

Every front-end replica binds the same ports with ``SO_REUSEPORT``, so ``num_replicas = N``
(``oms serve --frontends N``) gives N processes the kernel spreads connections over. Routes arrive as the
deployment's ``user_config`` (``reconfigure``; a ``config.Routes`` as JSON): Ray Serve applies a changed
``user_config`` to every running replica in place, and a replica that Serve starts to replace a dead one
gets the latest routes before it is marked running.

**Failover.** A front end binds its ports only once it has its routes *and* has found a live replica of
every routed version (bounded wait): until then the kernel sends every connection to the front ends that
are serving, so a restarted front end never answers 404 for a model that exists. While it drains (Ray
Serve's graceful shutdown) it stops listening first, answers requests still arriving on open connections
with 503 + ``Retry-After: 0`` + ``Connection: close`` (clients reconnect to another front end), and
finishes what is queued and in flight. Each front end batches on its own (its queue bound and in-flight
limit are per front end); ``/metrics`` on any of them sums all front ends' registries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ray import serve

from openmindspore.serve.config import Routes, ServerConfig
from openmindspore.serve.deployments import HEALTH_CHECK
from openmindspore.serve.endpoints import Endpoints
from openmindspore.serve.metrics import ServeMetrics, merge_expositions
from openmindspore.serve.replicas import ReplicaPool
from openmindspore.serve.routes import RouteTable

__all__ = ["FrontEnd", "FrontEndReplica", "FRONTEND_ENV"]

log = logging.getLogger("openmindspore.serve")

#: The front end's event loop is the replica's own loop: user code and the (handle-mode) router on it,
#: no cross-thread hop per request.
FRONTEND_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
_REPLICA_WAIT_S = 30.0  # longest a (re)started front end waits for the replicas of its routes before binding


class FrontEndReplica:
    """One front-end process: uvicorn (and gRPC) on shared ``SO_REUSEPORT`` ports, routes from ``user_config``."""

    # Ray Serve awaits an async constructor; mypy requires __init__ to return None
    async def __init__(self, config: dict[str, Any]) -> None:  # type: ignore[misc]
        import ray

        logging.getLogger("openmindspore").setLevel(logging.INFO)
        self.config = cfg = ServerConfig.model_validate(config)
        self.metrics = ServeMetrics()
        self.routes = RouteTable(self.metrics, cfg.retry_timeout_s, cfg.dispatch)
        self.endpoints = Endpoints(cfg, self.routes, self.metrics, self._all_metrics)
        self._name = ray.get_runtime_context().get_actor_name()
        self._peers = ReplicaPool(serve.get_replica_context().app_name, "FrontEnd", method="metrics_text")
        self._binding = asyncio.Lock()

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Install the routes pushed by ``Server``; bind on the first call (once replicas are known); wait
        until removed versions have drained."""
        removed = self.routes.apply(Routes.model_validate(user_config))
        async with self._binding:
            if not self.endpoints.serving:
                missing = await self.routes.wait_for_replicas(min(_REPLICA_WAIT_S, self.config.retry_timeout_s))
                if missing:
                    log.warning("binding without a live replica of %s (their requests wait for one)", missing)
                await self.endpoints.bind()
        for ov in removed:
            log.info("model=%s version=%s removed from routes; draining", ov.model, ov.version)
        if removed:
            await asyncio.gather(*(ov.batcher.drain(self.config.retry_timeout_s) for ov in removed))

    def metrics_text(self) -> bytes:
        """This front end's own Prometheus exposition."""
        return self.metrics.render()

    async def _all_metrics(self) -> bytes:
        """``/metrics``: this front end's metrics plus every other front end's, summed."""
        others = await self._peers.call_each("metrics_text", exclude=self._name)
        return merge_expositions([self.metrics.render(), *others]) if others else self.metrics.render()

    def check_health(self) -> None:
        self.endpoints.check_health()

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "serving": self.endpoints.serving, "models": self.routes.describe()}

    async def __del__(self) -> None:
        """Graceful shutdown: stop listening, refuse new work (503), finish what is queued and in flight."""
        await self.endpoints.drain(self.config.retry_timeout_s)


#: the Ray Serve deployment of ``FrontEndReplica`` (its replicas' actor names say ``FrontEnd``)
FrontEnd = serve.deployment(
    name="FrontEnd",
    max_ongoing_requests=16,
    graceful_shutdown_timeout_s=30,
    graceful_shutdown_wait_loop_s=0.5,
    **HEALTH_CHECK,
)(FrontEndReplica)
