"""Ray Serve deployments: ``ModelReplica`` (one per model version, R replicas) and ``Ingress`` (HTTP).

``Ingress`` answers the Open Inference Protocol REST API itself (raw Starlette requests, no FastAPI
layer), validates requests against the model metadata, owns one ``DynamicBatcher`` per model
version and sends each batch to the version's replicas through a Ray Serve ``DeploymentHandle``.
A batch whose replica died (``RayActorError``: actor died / unavailable, or a crashed worker) is sent
again: inference is idempotent, Ray Serve's router drops the dead replica and the controller starts
a replacement, so the client never sees the failure. Routes (which versions exist, which one is the
default) are pushed by ``openmindspore.serve.server.Server`` through ``set_routes``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from typing import Any

import numpy as np
from ray import serve
from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError
from ray.serve.exceptions import ReplicaUnavailableError
from starlette.requests import Request
from starlette.responses import Response

from openmindspore.serve.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from openmindspore.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from openmindspore.serve.protocol import ProtocolError, TensorSpec, encode_infer_response, parse_infer_request

__all__ = ["ModelReplica", "Ingress", "RETRYABLE_ERRORS", "SERVER_NAME"]

log = logging.getLogger("openmindspore.serve")

SERVER_NAME = "openmindspore"
#: Errors that mean "the replica (process) went away", never "the model raised".
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError,
                                                     ReplicaUnavailableError)


@serve.deployment(name="ModelReplica", max_ongoing_requests=1, graceful_shutdown_timeout_s=20,
                  health_check_period_s=2, health_check_timeout_s=30)
class ModelReplica:
    """Loads one predictor; ``infer`` runs one batch. One batch at a time per replica."""

    def __init__(self, source: str, warmup: bool = True) -> None:
        os.environ.setdefault("GLOG_v", "3")
        from openmindspore.serve.predictor import load_predictor

        t0 = time.perf_counter()
        self.predictor = load_predictor(source)
        if warmup:
            self.predictor.warmup()
        log.info("replica pid=%d loaded %s in %.2f s", os.getpid(), source, time.perf_counter() - t0)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.predictor.predict(inputs)

    def metadata(self) -> dict[str, Any]:
        return self.predictor.metadata()

    def pid(self) -> int:
        return os.getpid()


_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<tail>/ready|/infer)?/?$")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json", headers=headers)


class _Version:
    """A routed model version: its handle, specs and batcher."""

    def __init__(self, model: str, version: str, cfg: dict[str, Any], metrics: ServeMetrics, retry_timeout_s: float) -> None:
        self.model, self.version, self.cfg = model, version, cfg
        self.meta = cfg["metadata"]
        self.inputs = [TensorSpec.from_metadata(d) for d in self.meta["inputs"]]
        self.outputs = [TensorSpec.from_metadata(d) for d in self.meta["outputs"]]
        self.handle = serve.get_deployment_handle(cfg.get("deployment", "ModelReplica"), app_name=cfg["app"])
        self.retry_timeout_s = retry_timeout_s
        lab = {"model": model, "version": version}
        self.m_req, self.m_err, self.m_lat = metrics.requests, metrics.errors, metrics.latency.labels(**lab)
        self.m_retry = metrics.retries.labels(**lab)
        bsz, breq, q = metrics.batch_size.labels(**lab), metrics.batch_requests.labels(**lab), metrics.queue_depth.labels(**lab)
        b = cfg.get("batching", {})
        self.batcher = DynamicBatcher(self._call, max_batch=int(b.get("max_batch", 32)),
                                      max_delay_ms=float(b.get("max_delay_ms", 2.0)),
                                      max_queue=int(b.get("max_queue", 1024)), concurrency=self.concurrency(cfg),
                                      on_batch=lambda s, r: (bsz.observe(s), breq.observe(r)), on_queue=q.set)

    @staticmethod
    def concurrency(cfg: dict[str, Any]) -> int:
        return max(1, int(cfg.get("replicas", 1)) * int(cfg.get("inflight_per_replica", 1)))

    def update(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.batcher.resize(self.concurrency(cfg))

    async def _call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; on replica death retry (with backoff) until ``retry_timeout_s``."""
        deadline = time.monotonic() + self.retry_timeout_s
        delay, attempt = 0.02, 0
        while True:
            try:
                return await self.handle.infer.remote(batch)
            except RETRYABLE_ERRORS as e:
                attempt += 1
                self.m_retry.inc()
                if time.monotonic() + delay > deadline:
                    raise ReplicaGoneError(f"model {self.model!r} version {self.version}: no replica answered within "
                                           f"{self.retry_timeout_s:.0f} s after {attempt} attempts ({type(e).__name__})") from e
                log.warning("model=%s version=%s replica failed (%s); retry %d in %.2f s", self.model, self.version,
                            type(e).__name__, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)


class ReplicaGoneError(Exception):
    """Every retry of a batch hit a dead or unavailable replica."""


class Ingress:
    """The HTTP front: Open Inference Protocol v2 REST + ``/metrics``; batching; retries; versions."""

    def __init__(self, routes: dict[str, Any] | None = None, retry_timeout_s: float = 60.0) -> None:
        logging.getLogger("openmindspore").setLevel(logging.INFO)
        self.metrics = ServeMetrics()
        self.retry_timeout_s = retry_timeout_s
        self.models: dict[str, dict[str, Any]] = {}      # name -> {"default": v, "versions": {v: _Version}}
        self._draining = False
        self._retired: list[asyncio.Task] = []
        self._apply(routes or {"models": {}})

    # ------------------------------------------------------------- control
    def _apply(self, routes: dict[str, Any]) -> list[_Version]:
        """Install ``routes``; returns the versions that were removed (their batchers must drain)."""
        removed: list[_Version] = []
        new: dict[str, dict[str, Any]] = {}
        for name, m in routes.get("models", {}).items():
            old = self.models.get(name, {}).get("versions", {})
            versions: dict[str, _Version] = {}
            for v, cfg in m["versions"].items():
                if v in old and old[v].cfg["app"] == cfg["app"]:
                    old[v].update(cfg)
                    versions[v] = old[v]
                else:
                    versions[v] = _Version(name, v, cfg, self.metrics, self.retry_timeout_s)
            removed += [ov for v, ov in old.items() if versions.get(v) is not ov]
            new[name] = {"default": str(m["default"]), "versions": versions}
        for name, m in self.models.items():
            if name not in new:
                removed += list(m["versions"].values())
        self.models = new
        return removed

    async def set_routes(self, routes: dict[str, Any]) -> dict[str, Any]:
        """Switch traffic to ``routes``; removed versions drain in the background (see ``wait_drained``)."""
        for ov in self._apply(routes):
            log.info("model=%s version=%s removed from routes; draining", ov.model, ov.version)
            self._retired.append(asyncio.get_running_loop().create_task(ov.batcher.drain(self.retry_timeout_s)))
        return self.describe()

    async def wait_drained(self) -> bool:
        """Wait until every removed version finished its queued and in-flight requests."""
        tasks, self._retired = self._retired, []
        results = await asyncio.gather(*tasks) if tasks else []
        return all(results)

    def describe(self) -> dict[str, Any]:
        return {name: {"default": m["default"], "versions": sorted(m["versions"]),
                       "queued": {v: ver.batcher.queued_samples for v, ver in m["versions"].items()}}
                for name, m in self.models.items()}

    async def __del__(self) -> None:
        """Graceful shutdown: refuse new work, finish what is queued and in flight."""
        self._draining = True
        batchers = [v.batcher for m in self.models.values() for v in m["versions"].values()]
        await asyncio.gather(*(b.drain(self.retry_timeout_s) for b in batchers), return_exceptions=True)

    # ---------------------------------------------------------------- HTTP
    async def __call__(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        try:
            if path.startswith("/v2/models/"):
                return await self._models(request, path, method)
            if method != "GET":
                raise ProtocolError(f"method {method} is not allowed on {path}", 405)
            if path in ("/v2", "/v2/"):
                return _json({"name": SERVER_NAME, "version": _version(), "extensions": ["model_repository_index"]})
            if path == "/v2/health/live":
                return _json({"live": True})
            if path == "/v2/health/ready":
                ready = bool(self.models) and not self._draining
                return _json({"ready": ready}, 200 if ready else 503)
            if path in ("/v2/models", "/v2/repository/index"):
                return _json([{"name": n, "version": v, "state": "READY"}
                              for n, m in self.models.items() for v in m["versions"]])
            if path == "/metrics":
                return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)
            raise ProtocolError(f"no route for GET {path}; see /v2, /v2/health/*, /v2/models/{{model}}[/versions/{{v}}]"
                                "[/ready|/infer], /metrics", 404)
        except ProtocolError as e:
            return _json(e.body(), e.status, e.headers)

    def _lookup(self, model: str, version: str | None) -> _Version:
        m = self.models.get(model)
        if m is None:
            raise ProtocolError(f"unknown model {model!r}; served models: {sorted(self.models)}", 404)
        v = version if version is not None else m["default"]
        if v not in m["versions"]:
            raise ProtocolError(f"model {model!r} has no version {v!r}; loaded versions: {sorted(m['versions'])}", 404)
        return m["versions"][v]

    async def _models(self, request: Request, path: str, method: str) -> Response:
        match = _PATH.match(path)
        if not match:
            raise ProtocolError(f"no route for {method} {path}", 404)
        model, version, tail = match["model"], match["version"], match["tail"]
        if tail == "/infer":
            if method != "POST":
                raise ProtocolError(f"{path} takes POST, not {method}", 405)
            return await self._infer(request, model, version)
        if method != "GET":
            raise ProtocolError(f"{path} takes GET, not {method}", 405)
        ver = self._lookup(model, version)
        if tail == "/ready":
            ready = not self._draining
            return _json({"name": model, "version": ver.version, "ready": ready}, 200 if ready else 503)
        m = self.models[model]
        return _json({"name": model, "versions": sorted(m["versions"]), "default_version": m["default"],
                      "platform": ver.meta.get("platform", "mindspore"), "version": ver.version,
                      "inputs": ver.meta["inputs"], "outputs": ver.meta["outputs"],
                      "parameters": {k: ver.meta[k] for k in ("kind", "model", "checkpoint_step") if k in ver.meta}})

    async def _infer(self, request: Request, model: str, version: str | None) -> Response:
        t0 = time.perf_counter()
        labels = {"model": model, "version": version or "default"}
        try:
            ver = self._lookup(model, version)
            labels["version"] = ver.version
            if self._draining:
                raise ProtocolError("server is shutting down; retry on another instance", 503, {"Retry-After": "1"})
            req = parse_infer_request(await request.body(), ver.inputs, ver.outputs)
            try:
                out = await ver.batcher.submit(req.inputs, req.n)
            except QueueFullError as e:
                raise ProtocolError(str(e), 429, {"Retry-After": str(e.retry_after)}) from None
            except BatcherClosedError as e:
                raise ProtocolError(f"model {model!r} version {ver.version}: {e}; retry", 503, {"Retry-After": "1"}) from None
            except ReplicaGoneError as e:
                raise ProtocolError(str(e), 503, {"Retry-After": "1"}) from None
            except Exception as e:  # noqa: BLE001 - the model raised: 500 with its message
                log.exception("model=%s version=%s failed", model, ver.version)
                raise ProtocolError(f"model {model!r} version {ver.version} failed: {type(e).__name__}: "
                                    f"{str(e).splitlines()[-1] if str(e) else ''}", 500) from None
            body = encode_infer_response(model, ver.version, out, req.id, req.outputs)
            self.m_observe(labels, 200, t0)
            return _json(body)
        except ProtocolError as e:
            if e.status == 404:  # keep label cardinality bounded: unknown names are not labels
                labels = {"model": "_unknown", "version": "_unknown"}
            kind = {400: "validation", 404: "validation", 429: "overload", 503: "unavailable"}.get(e.status, "model")
            self.metrics.errors.labels(kind=kind, **labels).inc()
            self.m_observe(labels, e.status, t0)
            return _json(e.body(), e.status, e.headers)

    def m_observe(self, labels: dict[str, str], code: int, t0: float) -> None:
        self.metrics.requests.labels(code=str(code), **labels).inc()
        self.metrics.latency.labels(**labels).observe(time.perf_counter() - t0)


def _version() -> str:
    from openmindspore import __version__

    return __version__


Ingress = serve.deployment(name="Ingress", max_ongoing_requests=4096, graceful_shutdown_timeout_s=30,
                           graceful_shutdown_wait_loop_s=0.5)(Ingress)  # type: ignore[misc]
