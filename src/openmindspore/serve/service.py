"""``InferenceService``: what the REST and gRPC front ends share — routes, batchers, metrics, draining, timeouts.

Both protocols decode a request into a validated ``InferRequest`` against the routed version's specs, then
call :meth:`InferenceService.infer`: it finds the version (404 for a model or version that does not exist),
refuses new work while draining (503 + ``Retry-After``), queues the samples on the version's
``DynamicBatcher`` (429 when the queue is full), waits at most the request timeout (504), and records the
same metrics (``protocol`` label: ``rest`` or ``grpc``). Errors are ``ProtocolError`` with the HTTP status
REST answers; gRPC maps them to status codes (``grpc_status``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from openmindspore.serve.batcher import BatcherClosedError, QueueFullError
from openmindspore.serve.metrics import ServeMetrics
from openmindspore.serve.protocol import InferRequest, ProtocolError
from openmindspore.serve.routes import ReplicaGoneError, RouteTable, VersionRoute, input_error

__all__ = ["InferenceService", "SERVER_NAME", "EXTENSIONS", "META_PARAMETERS"]

log = logging.getLogger("openmindspore.serve")

SERVER_NAME = "openmindspore"
#: the protocol extensions this server answers (``GET /v2``, gRPC ``ServerMetadata``)
EXTENSIONS = ["model_repository_index", "binary_tensor_data"]
#: predictor metadata reported under ``parameters`` of the model metadata
META_PARAMETERS = (
    "kind",
    "model",
    "checkpoint_step",
    "threshold",
    "id2label",
    "class_names",
    "source_format",
    "preprocessing",
)
_KIND = {400: "validation", 404: "validation", 413: "validation", 429: "overload", 503: "unavailable", 504: "timeout"}
T = TypeVar("T")


def _version() -> str:
    from openmindspore import __version__

    return __version__


class InferenceService:
    """The protocol-independent serving core of one front end (``routes`` and ``metrics`` are its own)."""

    def __init__(self, routes: RouteTable, metrics: ServeMetrics, request_timeout_s: float = 60.0) -> None:
        self.routes, self.metrics, self.request_timeout_s = routes, metrics, request_timeout_s
        self.draining = False

    # ------------------------------------------------------------ metadata
    @property
    def ready(self) -> bool:
        return bool(self.routes.models) and not self.draining

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": _version(), "extensions": list(EXTENSIONS)}

    def repository_index(self) -> list[dict[str, str]]:
        return [{"name": n, "version": v, "state": "READY"} for n, m in self.routes.models.items() for v in m.versions]

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        ver = self.routes.lookup(model, version)
        m = self.routes.models[model]
        return {
            "name": model,
            "versions": sorted(m.versions),
            "default_version": m.default,
            "platform": ver.meta.get("platform", "mindspore"),
            "version": ver.version,
            "inputs": ver.meta["inputs"],
            "outputs": ver.meta["outputs"],
            "parameters": {k: ver.meta[k] for k in META_PARAMETERS if k in ver.meta},
        }

    def model_ready(self, model: str, version: str | None) -> tuple[str, bool]:
        """``(version, ready)``; a model or version that does not exist is a 404."""
        return self.routes.lookup(model, version).version, not self.draining

    # --------------------------------------------------------------- infer
    async def infer(
        self,
        model: str,
        version: str | None,
        decode: Callable[[VersionRoute], InferRequest],
        encode: Callable[[VersionRoute, InferRequest, dict[str, np.ndarray]], T],
        protocol: str,
        deadline_s: float | None = None,
    ) -> T:
        """Decode against the routed version, batch, wait (at most the timeout), encode; metrics either way.

        ``deadline_s``: the caller's own remaining time (a gRPC deadline), besides the server's
        ``request_timeout_s`` and the request's ``parameters.timeout``.
        """
        t0 = time.perf_counter()
        labels = {"model": model, "version": version or "default", "protocol": protocol}
        try:
            ver = self.routes.lookup(model, version)
            labels["version"] = ver.version
            if self.draining:
                raise ProtocolError(
                    "this front end is shutting down; retry (another front end takes the connection)",
                    503,
                    {"Retry-After": "0", "Connection": "close"},
                )
            req = decode(ver)
            timeout = min(self.request_timeout_s, req.timeout_s or math.inf, deadline_s or math.inf)
            out = await self._run(ver, req, timeout)
            reply = encode(ver, req, out)
            self._observe(labels, 200, t0)
            return reply
        except ProtocolError as e:
            if e.status == 404:  # keep label cardinality bounded: unknown names are not labels
                labels.update(model="_unknown", version="_unknown")
            self.metrics.errors.labels(kind=_KIND.get(e.status, "model"), **labels).inc()
            self._observe(labels, e.status, t0)
            raise

    async def _run(self, ver: VersionRoute, req: InferRequest, timeout: float) -> dict[str, np.ndarray]:
        name = f"model {ver.model!r} version {ver.version}"
        try:
            async with asyncio.timeout(timeout if math.isfinite(timeout) else None):  # no extra task per request
                return await ver.batcher.submit(req.inputs, req.n)
        except QueueFullError as e:
            raise ProtocolError(str(e), 429, {"Retry-After": str(e.retry_after)}) from None
        except BatcherClosedError as e:
            raise ProtocolError(f"{name}: {e}; retry", 503, {"Retry-After": "1"}) from None
        except ReplicaGoneError as e:
            raise ProtocolError(str(e), 503, {"Retry-After": "1"}) from None
        except TimeoutError:
            raise ProtocolError(
                f"{name} did not answer within the request timeout of {timeout:g} s "
                "(--request-timeout-s, or the request's parameters.timeout / gRPC deadline)",
                504,
            ) from None
        except Exception as e:  # noqa: BLE001 - the model raised: 500 with its message
            bad_input = input_error(e)
            if bad_input is not None:
                raise ProtocolError(f"{name}: {bad_input}") from None
            log.exception("%s failed", name)
            last = str(e).splitlines()[-1] if str(e) else ""
            raise ProtocolError(f"{name} failed: {type(e).__name__}: {last}", 500) from None

    def _observe(self, labels: dict[str, str], code: int, t0: float) -> None:
        self.metrics.requests.labels(code=str(code), **labels).inc()
        self.metrics.latency.labels(model=labels["model"], version=labels["version"]).observe(time.perf_counter() - t0)
