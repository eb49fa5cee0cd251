"""The binary tensor extension of the OIP REST API (Triton's ``binary_tensor_data``): framing of HTTP bodies.

A request or response whose tensors travel as raw bytes is ``JSON header + raw bytes``; the header's length
is the HTTP header ``Inference-Header-Content-Length``. In the JSON, such a tensor carries
``parameters.binary_data_size`` (its byte count) instead of ``data``; the bytes follow in tensor order.
A client asks for binary outputs per output (``outputs[i].parameters.binary_data: true``) or for all of them
(request ``parameters.binary_data_output: true``; tritonclient's default). Raw layouts are those of
:func:`openmindspore.serve.protocol.array_to_raw`. Plain numpy: used by the server (``http_app``) and by
``Client``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from openmindspore.serve.protocol import (
    ProtocolError,
    array_to_raw,
    dtype_to_datatype,
    tensor_from_json,
    tensor_to_json,
)

__all__ = ["HEADER", "decode_response", "encode_request", "encode_response", "split_body"]

#: the HTTP header giving the JSON header's length in bytes
HEADER = "inference-header-content-length"
_OCTETS = b"application/octet-stream"
_JSON = b"application/json"


def split_body(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview | None]:
    """``(JSON header, raw bytes after it or None)`` of a request body."""
    mv = memoryview(body)
    if header_length is None:
        return mv, None
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(mv):
        raise ProtocolError(
            f"Inference-Header-Content-Length={header_length!r} must be a byte count between 0 and the body's "
            f"{len(mv)} bytes"
        )
    return mv[:n], mv[n:]


def encode_response(resp: dict[str, Any], outputs: dict[str, np.ndarray]) -> tuple[bytes, bytes, dict[str, str]]:
    """``(body, content type, extra headers)`` of an infer response whose JSON ``resp`` marks binary outputs."""
    header = json.dumps(resp, separators=(",", ":")).encode()
    raw = [array_to_raw(outputs[t["name"]]) for t in resp["outputs"] if "binary_data_size" in t.get("parameters", {})]
    if not raw:
        return header, _JSON, {}
    return b"".join([header, *raw]), _OCTETS, {"Inference-Header-Content-Length": str(len(header))}


def encode_request(
    inputs: dict[str, np.ndarray],
    outputs: list[str] | None = None,
    request_id: str | None = None,
    binary: bool = True,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` of an infer request; with ``binary`` inputs and outputs travel as raw bytes."""
    tensors, raw = [], []
    for name, arr in inputs.items():
        a = np.asarray(arr)
        if binary:
            data = array_to_raw(a)
            size = {"binary_data_size": len(data)}
            tensors.append(
                {"name": name, "shape": list(a.shape), "datatype": dtype_to_datatype(a.dtype), "parameters": size}
            )
            raw.append(data)
        else:
            tensors.append(tensor_to_json(name, a))
    body: dict[str, Any] = {"inputs": tensors}
    params = dict(parameters or {})
    if outputs is not None:
        body["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
    elif binary:
        params["binary_data_output"] = True
    if params:
        body["parameters"] = params
    if request_id is not None:
        body["id"] = request_id
    header = json.dumps(body, separators=(",", ":")).encode()
    if not raw:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *raw]), {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def decode_response(body: bytes, header_length: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(JSON header, {name: array})`` of an infer response, raw outputs decoded."""
    head, rest = split_body(body, header_length)
    resp = json.loads(bytes(head))
    out: dict[str, np.ndarray] = {}
    offset = 0
    blob = rest if rest is not None else memoryview(b"")
    for t in resp.get("outputs", []):
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is None:
            name, arr = tensor_from_json(t, "output")
        else:
            name, arr = tensor_from_json(t, "output", raw=blob[offset : offset + int(size)])
            offset += int(size)
        out[name] = arr
    return resp, out
