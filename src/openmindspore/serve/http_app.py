"""The Open Inference Protocol v2 REST API as a raw ASGI application (no framework layer).

``OIPApp(routes, metrics)`` answers ``/v2``, ``/v2/health/{live,ready}``, ``/v2/models``,
``/v2/models/{m}[/versions/{v}][/ready|/infer]`` and ``/metrics``. It is a plain ASGI callable so
the cheapest server can run it (uvicorn + httptools in ``FrontEnd``); every error body is exactly
``{"error": "..."}`` (see ``protocol.ProtocolError``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from openmindspore.serve.batcher import BatcherClosedError, QueueFullError
from openmindspore.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from openmindspore.serve.protocol import ProtocolError, encode_infer_response, parse_infer_request
from openmindspore.serve.routes import ReplicaGoneError, RouteTable

__all__ = ["OIPApp", "SERVER_NAME"]

log = logging.getLogger("openmindspore.serve")

SERVER_NAME = "openmindspore"
_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<tail>/ready|/infer)?/?$")
_JSON = b"application/json"
_META_PARAMETERS = ("kind", "model", "checkpoint_step", "threshold", "id2label")
Reply = tuple[int, bytes, bytes, dict[str, str]]  # status, body, content type, extra headers


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body, separators=(",", ":")).encode(), _JSON, headers or {}


def _version() -> str:
    from openmindspore import __version__

    return __version__


class OIPApp:
    """ASGI app: routing, validation, batching (through ``RouteTable``), metrics."""

    def __init__(
        self, routes: RouteTable, metrics: ServeMetrics, collect_metrics: Callable[[], Awaitable[bytes]] | None = None
    ) -> None:
        self.routes, self.metrics = routes, metrics
        self.collect_metrics = collect_metrics  # all front ends' metrics, merged (default: this one's)
        self.draining = False

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        status, body, ctype, headers = await self.handle(scope["method"], scope["path"], b"".join(chunks))
        raw = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        """One request -> ``(status, body, content type, headers)``."""
        try:
            if path.startswith("/v2/models/"):
                return await self._models(method, path, body)
            if method != "GET":
                raise ProtocolError(f"method {method} is not allowed on {path}", 405)
            if path in ("/v2", "/v2/"):
                return _json({"name": SERVER_NAME, "version": _version(), "extensions": ["model_repository_index"]})
            if path == "/v2/health/live":
                return _json({"live": True})
            if path == "/v2/health/ready":
                ready = bool(self.routes.models) and not self.draining
                return _json({"ready": ready}, 200 if ready else 503)
            if path in ("/v2/models", "/v2/repository/index"):
                return _json(
                    [
                        {"name": n, "version": v, "state": "READY"}
                        for n, m in self.routes.models.items()
                        for v in m.versions
                    ]
                )
            if path == "/metrics":
                text = await self.collect_metrics() if self.collect_metrics is not None else self.metrics.render()
                return 200, text, CONTENT_TYPE_LATEST.encode(), {}
            raise ProtocolError(
                f"no route for GET {path}; see /v2, /v2/health/*, /v2/models/{{model}}[/versions/{{v}}]"
                "[/ready|/infer], /metrics",
                404,
            )
        except ProtocolError as e:
            return _json(e.body(), e.status, e.headers)

    async def _models(self, method: str, path: str, body: bytes) -> Reply:
        match = _PATH.match(path)
        if not match:
            raise ProtocolError(f"no route for {method} {path}", 404)
        model, version, tail = match["model"], match["version"], match["tail"]
        if tail == "/infer":
            if method != "POST":
                raise ProtocolError(f"{path} takes POST, not {method}", 405)
            return await self._infer(body, model, version)
        if method != "GET":
            raise ProtocolError(f"{path} takes GET, not {method}", 405)
        ver = self.routes.lookup(model, version)
        if tail == "/ready":
            ready = not self.draining
            return _json({"name": model, "version": ver.version, "ready": ready}, 200 if ready else 503)
        m = self.routes.models[model]
        return _json(
            {
                "name": model,
                "versions": sorted(m.versions),
                "default_version": m.default,
                "platform": ver.meta.get("platform", "mindspore"),
                "version": ver.version,
                "inputs": ver.meta["inputs"],
                "outputs": ver.meta["outputs"],
                "parameters": {k: ver.meta[k] for k in _META_PARAMETERS if k in ver.meta},
            }
        )

    async def _infer(self, raw: bytes, model: str, version: str | None) -> Reply:
        t0 = time.perf_counter()
        labels = {"model": model, "version": version or "default"}
        try:
            ver = self.routes.lookup(model, version)
            labels["version"] = ver.version
            if self.draining:
                raise ProtocolError("server is shutting down; retry on another instance", 503, {"Retry-After": "1"})
            req = parse_infer_request(raw, ver.inputs, ver.outputs)
            try:
                out = await ver.batcher.submit(req.inputs, req.n)
            except QueueFullError as e:
                raise ProtocolError(str(e), 429, {"Retry-After": str(e.retry_after)}) from None
            except BatcherClosedError as e:
                raise ProtocolError(
                    f"model {model!r} version {ver.version}: {e}; retry", 503, {"Retry-After": "1"}
                ) from None
            except ReplicaGoneError as e:
                raise ProtocolError(str(e), 503, {"Retry-After": "1"}) from None
            except Exception as e:  # noqa: BLE001 - the model raised: 500 with its message
                log.exception("model=%s version=%s failed", model, ver.version)
                raise ProtocolError(
                    f"model {model!r} version {ver.version} failed: {type(e).__name__}: "
                    f"{str(e).splitlines()[-1] if str(e) else ''}",
                    500,
                ) from None
            reply = _json(encode_infer_response(model, ver.version, out, req.id, req.outputs))
            self._observe(labels, 200, t0)
            return reply
        except ProtocolError as e:
            if e.status == 404:  # keep label cardinality bounded: unknown names are not labels
                labels = {"model": "_unknown", "version": "_unknown"}
            kind = {400: "validation", 404: "validation", 429: "overload", 503: "unavailable"}.get(e.status, "model")
            self.metrics.errors.labels(kind=kind, **labels).inc()
            self._observe(labels, e.status, t0)
            return _json(e.body(), e.status, e.headers)

    def _observe(self, labels: dict[str, str], code: int, t0: float) -> None:
        self.metrics.requests.labels(code=str(code), **labels).inc()
        self.metrics.latency.labels(**labels).observe(time.perf_counter() - t0)
