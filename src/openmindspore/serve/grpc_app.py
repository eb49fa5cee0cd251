"""The Open Inference Protocol over gRPC (KServe's ``inference.GRPCInferenceService``), on ``grpc.aio``.

``OIPServicer`` answers the six RPCs of ``_proto/grpc_predict_v2.proto`` in front of the same
:class:`~openmindspore.serve.service.InferenceService` as the REST app: same routes, batchers, metrics,
timeouts and draining. Inputs may come as typed ``contents`` or as ``raw_input_contents`` (what
tritonclient sends); outputs are answered as ``raw_output_contents`` (what Triton does; every KServe v2
client reads them). A ``ProtocolError``'s HTTP status becomes the gRPC status of the same meaning
(``GRPC_STATUS``); the message is the same as over REST. ``authorization`` metadata carries the bearer
token (``ServerLive`` and ``ServerReady`` stay open). ``serve_grpc`` starts the server on a port the
front ends share (gRPC sets ``SO_REUSEPORT``), with the request size limit and optional TLS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np

from openmindspore.serve._proto import grpc_predict_v2_pb2 as pb
from openmindspore.serve._proto import grpc_predict_v2_pb2_grpc as pb_grpc
from openmindspore.serve.protocol import (
    InferRequest,
    ProtocolError,
    array_to_raw,
    check_inputs,
    datatype_to_dtype,
    dtype_to_datatype,
    raw_to_array,
    requested_outputs,
    timeout_parameter,
)
from openmindspore.serve.routes import VersionRoute
from openmindspore.serve.security import OPEN_RPCS, BearerAuth
from openmindspore.serve.service import InferenceService

__all__ = ["GRPC_STATUS", "OIPServicer", "serve_grpc", "tensor_from_proto"]

log = logging.getLogger("openmindspore.serve")

#: HTTP status of a ``ProtocolError`` -> the gRPC status code of the same meaning
GRPC_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
#: datatype -> the typed ``InferTensorContents`` field that carries it (FP16 travels raw only)
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _param(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def tensor_from_proto(t: Any, raw: bytes | None) -> np.ndarray:
    """One ``InferInputTensor`` (its bytes in ``raw`` when the request used ``raw_input_contents``) -> array."""
    what = f"input {t.name!r}"
    shape = [int(s) for s in t.shape]
    if any(s < 0 for s in shape):
        raise ProtocolError(f"{what}: shape must be non-negative integers; received {shape}")
    try:
        dtype = datatype_to_dtype(t.datatype)
    except ValueError as e:
        raise ProtocolError(f"{what}: {e}") from None
    if raw is not None:
        return raw_to_array(raw, t.datatype, shape, what)
    field = _CONTENTS.get(t.datatype)
    if field is None:
        raise ProtocolError(f"{what}: {t.datatype} travels in raw_input_contents only (no typed contents field)")
    values = getattr(t.contents, field)
    count = int(np.prod(shape)) if shape else 1
    if len(values) != count:
        raise ProtocolError(f"{what}: shape {shape} needs {count} elements in contents.{field}; received {len(values)}")
    if t.datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = list(values)
        return arr.reshape(shape)
    try:
        return np.asarray(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as e:
        raise ProtocolError(f"{what}: contents.{field} are not valid {t.datatype} ({e})") from None


def decode_request(req: Any, ver: VersionRoute) -> InferRequest:
    """A ``ModelInferRequest`` -> a validated ``InferRequest`` against the version's specs."""
    raws: Sequence[bytes] = req.raw_input_contents
    if raws and len(raws) != len(req.inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raws)} entries for {len(req.inputs)} inputs; give one per input, in order"
        )
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, t in enumerate(req.inputs):
        if t.name in arrays:
            raise ProtocolError(f"input {t.name!r} is given more than once")
        arrays[t.name] = tensor_from_proto(t, raws[i] if raws else None)
        datatypes[t.name] = t.datatype
    if not arrays:
        raise ProtocolError(f"the request has no inputs (expected inputs: {[s.name for s in ver.inputs]})")
    n = check_inputs(arrays, datatypes, ver.inputs)
    params = {k: _param(v) for k, v in req.parameters.items()}
    wanted = requested_outputs([o.name for o in req.outputs], ver.outputs) if len(req.outputs) else None
    return InferRequest(
        inputs=arrays, n=n, id=req.id or None, outputs=wanted, parameters=params, timeout_s=timeout_parameter(params)
    )


def encode_response(model: str, version: str, req: InferRequest, out: dict[str, np.ndarray]) -> Any:
    names = req.outputs if req.outputs is not None else list(out)
    resp = pb.ModelInferResponse(model_name=model, model_version=version, id=req.id or "")
    for name in names:
        arr = np.asarray(out[name])
        resp.outputs.add(name=name, datatype=dtype_to_datatype(arr.dtype), shape=list(arr.shape))
        resp.raw_output_contents.append(array_to_raw(arr))
    return resp


class OIPServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The gRPC face of an ``InferenceService``."""

    def __init__(self, service: InferenceService, auth: BearerAuth | None = None) -> None:
        self.service, self.auth = service, auth or BearerAuth()

    async def _check(self, method: str, context: Any) -> None:
        if method in OPEN_RPCS or not self.auth.enabled:
            return
        got = dict(context.invocation_metadata() or ()).get("authorization")
        if not self.auth.allows(got):
            self.service.metrics.errors.labels(model="_auth", version="_auth", kind="auth", protocol="grpc").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, BearerAuth.problem(got, "authorization", "metadata"))

    @staticmethod
    async def _abort(context: Any, e: ProtocolError) -> None:
        await context.abort(GRPC_STATUS.get(e.status, grpc.StatusCode.UNKNOWN), str(e))

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - the protocol's names
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.service.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check("ModelReady", context)
        try:
            _, ready = self.service.model_ready(request.name, request.version or None)
        except ProtocolError as e:
            await self._abort(context, e)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check("ServerMetadata", context)
        return pb.ServerMetadataResponse(**self.service.server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check("ModelMetadata", context)
        try:
            m = self.service.model_metadata(request.name, request.version or None)
        except ProtocolError as e:
            await self._abort(context, e)
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=m["name"],
            versions=m["versions"],
            platform=m["platform"],
            inputs=[tm(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in m["inputs"]],
            outputs=[tm(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in m["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check("ModelInfer", context)
        model = request.model_name
        try:
            return await self.service.infer(
                model,
                request.model_version or None,
                lambda ver: decode_request(request, ver),
                lambda ver, req, out: encode_response(model, ver.version, req, out),
                "grpc",
                deadline_s=context.time_remaining(),
            )
        except ProtocolError as e:
            await self._abort(context, e)


async def serve_grpc(
    service: InferenceService,
    host: str,
    port: int,
    auth: BearerAuth | None = None,
    max_request_bytes: int = 64 << 20,
    tls: tuple[bytes, bytes] | None = None,
) -> grpc.aio.Server:
    """Start a ``grpc.aio`` server for ``service`` on ``host:port`` (``tls``: PEM key and certificate)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(OIPServicer(service, auth), server)
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls is not None:
        bound = server.add_secure_port(addr, grpc.ssl_server_credentials([tls]))
    else:
        bound = server.add_insecure_port(addr)
    if bound == 0:
        raise OSError(f"gRPC could not bind {addr}")
    await server.start()
    return server
