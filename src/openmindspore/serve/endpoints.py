"""``Endpoints``: the listening side of one front end — REST (uvicorn + httptools) and gRPC (``grpc.aio``) over
one :class:`~openmindspore.serve.service.InferenceService`.

It owns the service, the ASGI app, the auth check, the two servers and their sockets: ``bind`` starts them
(REST on a ``SO_REUSEPORT`` socket, gRPC on ``grpc_port`` when set, TLS when ``tls_cert``/``tls_key`` are set),
``drain`` stops listening first, lets queued and in-flight work finish, then stops the servers. It knows
nothing of Ray: ``frontend.FrontEndReplica`` runs it inside a Ray Serve replica (routes from ``user_config``,
batches to replica actors) and tests run it in-process with predictors called directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openmindspore.serve.config import ServerConfig
from openmindspore.serve.http_app import OIPApp
from openmindspore.serve.metrics import ServeMetrics
from openmindspore.serve.routes import RouteTable
from openmindspore.serve.security import BearerAuth
from openmindspore.serve.service import InferenceService

__all__ = ["Endpoints", "listen_socket"]

log = logging.getLogger("openmindspore.serve")


def listen_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket with ``SO_REUSEPORT`` (several front-end processes share the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio's own loop sets TCP_NODELAY on accepted sockets only when their proto says
    # TCP (uvloop always does). Without it, uvicorn's two writes per response (head, body) meet Nagle's algorithm
    # and the client's delayed ACK: ~40 ms per request on loopback.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class Endpoints:
    """REST and gRPC servers of one front end for ``routes`` (``collect_metrics``: what ``/metrics`` shows)."""

    def __init__(
        self,
        config: ServerConfig,
        routes: RouteTable,
        metrics: ServeMetrics,
        collect_metrics: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.config = config
        self.service = InferenceService(routes, metrics, config.request_timeout_s)
        self.auth = BearerAuth(config.auth_token_file)
        self.app = OIPApp(self.service, collect_metrics, self.auth, config.max_request_bytes)
        self._server: Any = None  # uvicorn.Server once bound
        self._task: asyncio.Task | None = None
        self._grpc: Any = None  # grpc.aio.Server once bound
        self._sock: socket.socket | None = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def bind(self) -> None:
        """Start listening (gRPC first, then REST: REST's liveness means both are up)."""
        import uvicorn

        cfg = self.config
        tls: dict[str, Any] = {"ssl_certfile": cfg.tls_cert, "ssl_keyfile": cfg.tls_key} if cfg.tls_cert else {}
        if cfg.grpc_port is not None:
            from openmindspore.serve.grpc_app import serve_grpc

            pem = (Path(str(cfg.tls_key)).read_bytes(), Path(cfg.tls_cert).read_bytes()) if cfg.tls_cert else None
            self._grpc = await serve_grpc(self.service, cfg.host, cfg.grpc_port, self.auth, cfg.max_request_bytes, pem)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_level="warning",
            http="httptools",
            timeout_keep_alive=30,
            backlog=2048,
            **tls,
        )
        self._sock = listen_socket(cfg.host, cfg.port)
        server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[self._sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # raises why uvicorn could not start
                raise RuntimeError(f"the HTTP server on {cfg.host}:{cfg.port} stopped while starting")
            await asyncio.sleep(0.01)
        self._server = server
        grpc_at = f", grpc {cfg.host}:{cfg.grpc_port}" if cfg.grpc_port else ""
        log.info("front end pid=%d serving %s://%s:%d%s", os.getpid(), cfg.scheme, cfg.host, cfg.port, grpc_at)

    def check_health(self) -> None:
        if self._task is not None and self._task.done():
            raise RuntimeError("the front end's HTTP server stopped")

    async def drain(self, timeout_s: float) -> None:
        """Stop listening, answer 503 to new requests, finish queued and in-flight work, stop the servers."""
        self.service.draining = True
        waits: list[Any] = [v.batcher.drain(timeout_s) for v in self.service.routes.all_versions()]
        if self._server is not None:
            for s in getattr(self._server, "servers", []):
                s.close()  # the kernel now sends new connections to the other front ends
        if self._grpc is not None:
            waits.append(self._grpc.stop(grace=timeout_s))
        await asyncio.gather(*waits, return_exceptions=True)
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (TimeoutError, Exception):  # noqa: BLE001 - shutting down anyway
                pass
        if self._sock is not None:
            self._sock.close()
