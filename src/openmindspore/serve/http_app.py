"""The Open Inference Protocol v2 REST API as a raw ASGI application (no framework layer).

``OIPApp(service)`` answers ``/v2``, ``/v2/health/{live,ready}``, ``/v2/models``,
``/v2/models/{m}[/versions/{v}][/ready|/infer]`` and ``/metrics``, in front of the protocol-independent
:class:`~openmindspore.serve.service.InferenceService` (which the gRPC servicer shares). It is a plain ASGI
callable so the cheapest server can run it (uvicorn + httptools in ``FrontEnd``). Every error body is exactly
``{"error": "..."}`` (see ``protocol.ProtocolError``).

Before a body is read: the bearer token (401, health endpoints open) and the declared ``Content-Length``
against ``max_request_bytes`` (413). A body without a length is counted while it streams in and refused as
soon as it passes the limit. The rest of a refused body is never held: once the answer is sent, uvicorn's
parser drops the bytes still arriving (so the client finishes sending and reads the 413 instead of a reset).
Infer bodies may use the binary tensor extension (``Inference-Header-Content-Length``,
:mod:`openmindspore.serve.binary`) and ``Content-Encoding: gzip|deflate`` (the limit applies to the decompressed
size too).
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from openmindspore.serve.binary import HEADER, encode_response, split_body
from openmindspore.serve.metrics import CONTENT_TYPE_LATEST
from openmindspore.serve.protocol import InferRequest, ProtocolError, encode_infer_response, parse_infer_request
from openmindspore.serve.routes import VersionRoute
from openmindspore.serve.security import OPEN_PATHS, BearerAuth
from openmindspore.serve.service import InferenceService

__all__ = ["OIPApp"]

log = logging.getLogger("openmindspore.serve")

_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<tail>/ready|/infer)?/?$")
_JSON = b"application/json"
_WANTED = {b"authorization", b"content-length", b"content-encoding", HEADER.encode()}
Reply = tuple[int, bytes, bytes, dict[str, str]]  # status, body, content type, extra headers
Receive = Callable[[], Awaitable[dict]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body, separators=(",", ":")).encode(), _JSON, headers or {}


def _error(e: ProtocolError) -> Reply:
    return _json(e.body(), e.status, e.headers)


class _TooLarge(ProtocolError):
    def __init__(self, size: int | str, limit: int, what: str) -> None:
        mb = limit / (1 << 20)
        super().__init__(
            f"request body of {size} bytes ({what}) exceeds --max-request-mb={mb:g} ({limit} bytes)",
            413,
        )


class OIPApp:
    """ASGI app: auth, limits, routing, (binary) encoding; inference through ``InferenceService``."""

    def __init__(
        self,
        service: InferenceService,
        collect_metrics: Callable[[], Awaitable[bytes]] | None = None,
        auth: BearerAuth | None = None,
        max_request_bytes: int = 64 << 20,
    ) -> None:
        self.service = service
        self.collect_metrics = collect_metrics  # all front ends' metrics, merged (default: this one's)
        self.auth = auth or BearerAuth()
        self.max_request_bytes = max_request_bytes

    @property
    def draining(self) -> bool:
        return self.service.draining

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        path, method = scope["path"], scope["method"]
        try:
            if path not in OPEN_PATHS and not self.auth.allows(headers.get("authorization")):
                self._auth_failure(path)
                raise ProtocolError(
                    BearerAuth.problem(headers.get("authorization"), "Authorization", "header"),
                    401,
                    {"WWW-Authenticate": 'Bearer realm="oms"'},
                )
            body = await self._read_body(headers, receive)
            reply = await self.handle(method, path, body, headers)
        except ProtocolError as e:
            reply = _error(e)
        status, payload, ctype, extra = reply
        if self.service.draining:
            extra = {**extra, "Connection": "close"}  # the client reconnects to another front end
        raw = [(b"content-type", ctype), (b"content-length", str(len(payload)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})

    def _auth_failure(self, path: str) -> None:
        self.service.metrics.errors.labels(model="_auth", version="_auth", kind="auth", protocol="rest").inc()
        log.debug("401 for %s", path)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.max_request_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge(declared, limit, "Content-Length")
        chunks, size = [], 0
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge(f"more than {limit}", limit, "streamed")
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "deflate"):
            raise ProtocolError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none", 415)
        d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise ProtocolError(f"request body is not valid {encoding} (Content-Encoding): {e}") from None
        if len(out) > limit:
            raise _TooLarge(f"more than {limit}", limit, f"after {encoding} decompression")
        return out

    async def handle(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        """One request -> ``(status, body, content type, headers)``."""
        svc = self.service
        try:
            if path.startswith("/v2/models/"):
                return await self._models(method, path, body, headers or {})
            if method != "GET":
                raise ProtocolError(f"method {method} is not allowed on {path}", 405)
            if path in ("/v2", "/v2/"):
                return _json(svc.server_metadata())
            if path == "/v2/health/live":
                return _json({"live": True})
            if path == "/v2/health/ready":
                ready = svc.ready
                return _json({"ready": ready}, 200 if ready else 503, None if ready else {"Retry-After": "1"})
            if path in ("/v2/models", "/v2/repository/index"):
                return _json(svc.repository_index())
            if path == "/metrics":
                text = await self.collect_metrics() if self.collect_metrics is not None else svc.metrics.render()
                return 200, text, CONTENT_TYPE_LATEST.encode(), {}
            raise ProtocolError(
                f"no route for GET {path}; see /v2, /v2/health/*, /v2/models/{{model}}[/versions/{{v}}]"
                "[/ready|/infer], /metrics",
                404,
            )
        except ProtocolError as e:
            return _error(e)

    async def _models(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        match = _PATH.match(path)
        if not match:
            raise ProtocolError(f"no route for {method} {path}", 404)
        model, version, tail = match["model"], match["version"], match["tail"]
        if tail == "/infer":
            if method != "POST":
                raise ProtocolError(f"{path} takes POST, not {method}", 405)
            return await self._infer(body, headers.get(HEADER), model, version)
        if method != "GET":
            raise ProtocolError(f"{path} takes GET, not {method}", 405)
        if tail == "/ready":
            ver, ready = self.service.model_ready(model, version)
            return _json({"name": model, "version": ver, "ready": ready}, 200 if ready else 503)
        return _json(self.service.model_metadata(model, version))

    async def _infer(self, raw: bytes, header_length: str | None, model: str, version: str | None) -> Reply:
        def decode(ver: VersionRoute) -> InferRequest:
            head, blob = split_body(raw, header_length)
            return parse_infer_request(head, ver.inputs, ver.outputs, blob)

        def encode(ver: VersionRoute, req: InferRequest, out: dict) -> Reply:
            resp = encode_infer_response(model, ver.version, out, req.id, req.outputs, binary=req.binary)
            if not req.binary:
                return _json(resp)
            payload, ctype, extra = encode_response(resp, out)
            return 200, payload, ctype, extra

        return await self.service.infer(model, version, decode, encode, "rest")
