"""An in-process OIP server for fast tests: the real front-end endpoints (REST app, gRPC servicer, service,
batchers, auth, limits) on 127.0.0.1, with each model's batches run by its predictor in this process instead of
on a Ray replica. Everything but the replica hop is the production code path."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from oms_testing import free_port
from openmindspore.serve.config import Routes, ServerConfig, VersionConfig
from openmindspore.serve.endpoints import Endpoints
from openmindspore.serve.metrics import ServeMetrics
from openmindspore.serve.registry import Predictor
from openmindspore.serve.routes import RouteTable


class InProcess:
    """A dispatcher that runs a batch through a predictor in a worker thread (one batch at a time)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._lock = asyncio.Lock()

    async def call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(None, self.predictor.predict, batch)

    async def refresh(self) -> int:
        return 1


class LocalServer:
    """``with LocalServer({"m": predictor}, auth_token_file=...) as srv: srv.url, srv.grpc_target``."""

    def __init__(self, models: dict[str, Predictor], grpc: bool = True, batching: dict | None = None, **cfg: Any):
        self.models = models
        port, gport = free_port(), free_port() if grpc else None
        self.config = ServerConfig(port=port, grpc_port=gport, **cfg)
        versions = {
            name: {
                "default": "1",
                "versions": {"1": VersionConfig(app=name, replicas=1, metadata=p.metadata(), batching=batching or {})},
            }
            for name, p in models.items()
        }
        self.routes_config = Routes.model_validate({"models": versions})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.endpoints: Endpoints | None = None

    @property
    def url(self) -> str:
        return f"{self.config.scheme}://127.0.0.1:{self.config.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.config.grpc_port}"

    def _run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        metrics = ServeMetrics()
        routes = RouteTable(metrics, 10.0, make_dispatcher=lambda cfg: InProcess(self.models[cfg.app]))
        routes.apply(self.routes_config)
        self.endpoints = Endpoints(self.config, routes, metrics)
        await self.endpoints.bind()

    def __enter__(self) -> LocalServer:
        self._thread.start()
        try:
            self._run(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.endpoints is not None:
            self._run(self.endpoints.drain(5.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
