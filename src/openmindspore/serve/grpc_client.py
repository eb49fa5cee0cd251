"""``GrpcClient``: numpy in, numpy out over the OIP gRPC API (ours, KServe, Triton), without tritonclient.

::

    c = GrpcClient("127.0.0.1:8001")                       # oms serve ... --grpc-port 8001
    out = c.infer("digits", {"x": x})                       # tensors travel as raw_input_contents
    c = GrpcClient("host:8001", token="s3cret", root_certificates=open("ca.pem", "rb").read())

Like ``Client``, an inference that could not be answered (``UNAVAILABLE``: a front end that died, restarts
or drains; ``RESOURCE_EXHAUSTED`` from a full queue) is sent again with backoff for up to ``retry_s``
seconds. Other errors raise ``grpc.RpcError`` (``.code()``, ``.details()``).
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np

from openmindspore.serve._proto import grpc_predict_v2_pb2 as pb
from openmindspore.serve._proto import grpc_predict_v2_pb2_grpc as pb_grpc
from openmindspore.serve.protocol import array_to_raw, dtype_to_datatype, raw_to_array

__all__ = ["GrpcClient"]

_RETRY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class GrpcClient:
    """A blocking OIP gRPC client on one channel (``target``: ``host:port``)."""

    def __init__(
        self,
        target: str,
        timeout: float = 60.0,
        retry_s: float = 30.0,
        token: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
    ) -> None:
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if tls or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.timeout, self.retry_s = timeout, retry_s
        self.metadata = [("authorization", f"Bearer {token}")] if token is not None else []
        self.retries = 0

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any, retry: bool = False) -> Any:
        deadline = time.monotonic() + (self.retry_s if retry else 0.0)
        delay = 0.02
        while True:
            try:
                return getattr(self.stub, method)(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.RpcError as e:
                if not retry or e.code() not in _RETRY or time.monotonic() + delay > deadline:
                    raise
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def live(self) -> bool:
        return bool(self._call("ServerLive", pb.ServerLiveRequest()).live)

    def ready(self) -> bool:
        return bool(self._call("ServerReady", pb.ServerReadyRequest()).ready)

    def model_ready(self, model: str, version: str = "") -> bool:
        return bool(self._call("ModelReady", pb.ModelReadyRequest(name=model, version=version)).ready)

    def model_metadata(self, model: str, version: str = "") -> Any:
        return self._call("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version))

    def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        version: str = "",
        outputs: list[str] | None = None,
        request_id: str = "",
    ) -> dict[str, np.ndarray]:
        """``{name: (n, ...) array}`` -> ``{output name: array}`` (raw contents both ways)."""
        req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
        for name, arr in inputs.items():
            a = np.asarray(arr)
            req.inputs.add(name=name, datatype=dtype_to_datatype(a.dtype), shape=list(a.shape))
            req.raw_input_contents.append(array_to_raw(a))
        for o in outputs or []:
            req.outputs.add(name=o)
        resp = self._call("ModelInfer", req, retry=True)
        return {
            t.name: raw_to_array(resp.raw_output_contents[i], t.datatype, list(t.shape), f"output {t.name!r}")
            for i, t in enumerate(resp.outputs)
        }
