"""KServe v2 / Open Inference Protocol (OIP) tensors: parsing, validation and encoding, JSON and raw bytes.

A request body is ``{"id"?, "inputs": [{"name", "shape", "datatype", "data"?, "parameters"?}], "outputs"?:
[{"name", "parameters"?}], "parameters"?}``; ``data`` is row-major (flat, or nested lists that flatten to
``prod(shape)`` elements). With the binary tensor extension an input carries ``parameters.binary_data_size``
instead of ``data`` and its bytes follow the JSON header (:mod:`openmindspore.serve.binary` frames the HTTP
body; gRPC's ``raw_input_contents`` use the same raw layout). Raw tensors are row-major little-endian;
``BYTES`` elements are each a 4-byte little-endian length followed by that many bytes (in JSON: strings).
The first dimension of every tensor is the batch (sample) dimension; model metadata reports it as ``-1``.
Everything here is plain numpy and runs without Ray or MindSpore; ``ProtocolError`` carries the HTTP status
that REST answers (gRPC maps it to a status code).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

__all__ = [
    "DATATYPES",
    "Datatype",
    "ProtocolError",
    "TensorSpec",
    "InferRequest",
    "array_to_raw",
    "check_inputs",
    "parse_infer_request",
    "encode_infer_response",
    "dtype_to_datatype",
    "datatype_to_dtype",
    "raw_to_array",
    "requested_outputs",
    "tensor_to_json",
    "tensor_from_json",
    "timeout_parameter",
]

#: an OIP tensor datatype this server handles (``BYTES``: numpy object arrays of ``bytes``)
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
#: OIP datatype name -> numpy dtype.
DATATYPES: dict[Datatype, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAME_OF = {v: k for k, v in DATATYPES.items()}


class ProtocolError(Exception):
    """A client error answered with HTTP ``status`` and body ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        return {"error": str(self)}


def dtype_to_datatype(dtype: np.dtype | type) -> Datatype:
    """numpy dtype -> OIP datatype name (``float32`` -> ``FP32``; object and ``S`` arrays -> ``BYTES``)."""
    dt = np.dtype(dtype)
    if dt.kind == "S":
        return "BYTES"
    if dt not in _NAME_OF:
        raise ValueError(f"numpy dtype {dt} has no Open Inference Protocol datatype; use one of {sorted(DATATYPES)}")
    return _NAME_OF[dt]


def datatype_to_dtype(datatype: str) -> np.dtype:
    """OIP datatype name -> numpy dtype."""
    try:
        return DATATYPES[cast(Datatype, datatype)]
    except KeyError:
        raise ValueError(f"datatype {datatype!r} is not supported; expected one of {sorted(DATATYPES)}") from None


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: ``shape`` excludes the batch dimension (reported as -1)."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.datatype not in DATATYPES:
            raise ValueError(f"TensorSpec {self.name!r}: datatype {self.datatype!r} is not one of {sorted(DATATYPES)}")

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": [-1, *self.shape]}

    @classmethod
    def from_metadata(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(d["name"], d["datatype"], tuple(int(s) for s in d["shape"][1:]))


@dataclass
class InferRequest:
    """A validated inference request: ``inputs[name]`` has shape ``(n, *spec.shape)``.

    ``binary`` names the outputs to answer as raw bytes (binary tensor extension); ``timeout_s`` is the
    request's own deadline (Triton's ``parameters.timeout`` in microseconds), if it gave one.
    """

    inputs: dict[str, np.ndarray]
    n: int
    id: str | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary: set[str] = field(default_factory=set)
    timeout_s: float | None = None


# ------------------------------------------------------------------ raw bytes
def raw_to_array(buf: bytes | memoryview, datatype: str, shape: Sequence[int], what: str) -> np.ndarray:
    """Row-major little-endian bytes (``BYTES``: length-prefixed elements) -> an array of ``shape``."""
    count = int(np.prod(shape)) if len(shape) else 1
    if datatype == "BYTES":
        items: list[bytes] = []
        mv, off = memoryview(buf), 0
        while off < len(mv):
            if off + 4 > len(mv):
                raise ProtocolError(f"{what}: BYTES element {len(items)} is truncated (a 4-byte length is cut off)")
            (k,) = struct.unpack_from("<I", mv, off)
            if off + 4 + k > len(mv):
                raise ProtocolError(
                    f"{what}: BYTES element {len(items)} declares {k} bytes but only {len(mv) - off - 4} remain"
                )
            items.append(bytes(mv[off + 4 : off + 4 + k]))
            off += 4 + k
        if len(items) != count:
            raise ProtocolError(f"{what}: shape {list(shape)} needs {count} BYTES elements; received {len(items)}")
        arr = np.empty(count, dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    dtype = datatype_to_dtype(datatype).newbyteorder("<")
    need = count * dtype.itemsize
    if len(buf) != need:
        raise ProtocolError(
            f"{what}: shape {list(shape)} {datatype} needs {need} bytes of raw data; received {len(buf)}"
            + (" (truncated payload)" if len(buf) < need else "")
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def array_to_raw(arr: np.ndarray) -> bytes:
    """An array -> its raw OIP bytes (row-major little-endian; ``BYTES`` length-prefixed)."""
    a = np.asarray(arr)
    if a.dtype == object or a.dtype.kind == "S":
        parts: list[bytes] = []
        for v in a.reshape(-1):
            b = v.encode() if isinstance(v, str) else bytes(v)
            parts += [struct.pack("<I", len(b)), b]
        return b"".join(parts)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()


# ----------------------------------------------------------------------- JSON
def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list = []
        for row in data:
            out.extend(_flatten(row))
        return out
    return data


def _check_shape(shape: Any, where: str, name: Any) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ProtocolError(f"{where} {name!r}: shape must be a list of non-negative integers; received {shape!r}")
    return shape


def tensor_from_json(t: Any, where: str = "input", raw: bytes | memoryview | None = None) -> tuple[str, np.ndarray]:
    """One OIP JSON tensor (its bytes in ``raw`` with the binary extension) -> ``(name, array)``.

    Raises ``ProtocolError`` naming the tensor and what is wrong.
    """
    if not isinstance(t, dict):
        raise ProtocolError(
            f"each {where} must be an object with name, shape, datatype and data; got {type(t).__name__}"
        )
    need = ("name", "shape", "datatype") if raw is not None else ("name", "shape", "datatype", "data")
    missing = [k for k in need if k not in t]
    name = t.get("name", "?")
    if missing:
        raise ProtocolError(f"{where} {name!r} is missing field(s) {missing}; expected name, shape, datatype and data")
    shape = _check_shape(t["shape"], where, name)
    try:
        dtype = datatype_to_dtype(t["datatype"])
    except ValueError as e:
        raise ProtocolError(f"{where} {name!r}: {e}") from None
    if raw is not None:
        return str(name), raw_to_array(raw, t["datatype"], shape, f"{where} {name!r}")
    flat = _flatten(t["data"])
    expected = int(np.prod(shape)) if shape else 1
    if len(flat) != expected:
        raise ProtocolError(f"{where} {name!r}: shape {shape} needs {expected} elements in data; received {len(flat)}")
    try:
        if t["datatype"] == "BYTES":
            if not all(isinstance(v, str) for v in flat):
                raise TypeError("BYTES elements in JSON are strings")
            arr = np.empty(len(flat), dtype=object)
            arr[:] = [v.encode() for v in flat]
            arr = arr.reshape(shape)
        else:
            arr = np.asarray(flat, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"{where} {name!r}: data is not valid {t['datatype']} ({e})") from None
    return str(name), arr


def tensor_to_json(name: str, arr: np.ndarray) -> dict[str, Any]:
    """numpy array -> OIP JSON tensor (row-major flat ``data``; ``BYTES`` as UTF-8 strings)."""
    arr = np.asarray(arr)
    datatype = dtype_to_datatype(arr.dtype)
    if datatype == "BYTES":
        data: list = [v if isinstance(v, str) else bytes(v).decode("utf-8", "replace") for v in arr.reshape(-1)]
    else:
        data = arr.reshape(-1).tolist()
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}


def check_inputs(arrays: dict[str, np.ndarray], datatypes: dict[str, str], specs: Sequence[TensorSpec]) -> int:
    """Every declared input once, with its datatype and per-sample shape, all with one batch size; returns it."""
    known = {s.name: s for s in specs}
    for name, arr in arrays.items():
        if name not in known:
            raise ProtocolError(f"unknown input {name!r}; expected inputs {sorted(known)}")
        spec = known[name]
        if datatypes[name] != spec.datatype:
            raise ProtocolError(f"input {name!r}: expected datatype {spec.datatype}, received {datatypes[name]}")
        if arr.ndim != len(spec.shape) + 1 or tuple(arr.shape[1:]) != spec.shape:
            raise ProtocolError(f"input {name!r}: expected shape {[-1, *spec.shape]}, received {list(arr.shape)}")
        if arr.shape[0] < 1:
            raise ProtocolError(f"input {name!r}: batch dimension must be >= 1, received shape {list(arr.shape)}")
    missing = sorted(set(known) - set(arrays))
    if missing:
        raise ProtocolError(f"missing input(s) {missing}; expected inputs {sorted(known)}")
    sizes = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ProtocolError(f"inputs disagree on the batch dimension: {sizes}")
    return next(iter(sizes.values()))


def requested_outputs(wanted: Sequence[str] | None, outputs: Sequence[TensorSpec]) -> list[str] | None:
    """The requested output names (None: all), each checked against the model's outputs."""
    if wanted is None:
        return None
    known = {s.name for s in outputs}
    bad = [w for w in wanted if known and w not in known]
    if bad:
        raise ProtocolError(f"unknown output(s) {bad}; expected outputs {sorted(known)}")
    return list(wanted)


def timeout_parameter(params: dict[str, Any]) -> float | None:
    """Triton's request ``parameters.timeout`` (microseconds) in seconds, if given."""
    t = params.get("timeout")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
        raise ProtocolError(f"parameters.timeout must be a non-negative number of microseconds; received {t!r}")
    return float(t) / 1e6 if t else None


def parse_infer_request(
    body: bytes | str | memoryview | dict,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec] = (),
    binary: bytes | memoryview | None = None,
) -> InferRequest:
    """Parse and validate an infer request body (the JSON header, ``binary``: the bytes after it) against a
    model's input specs. Raises ``ProtocolError`` (HTTP 400) naming the field that is wrong."""
    if isinstance(body, (bytes, str, memoryview)):
        try:
            body = json.loads(bytes(body) if isinstance(body, memoryview) else body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ProtocolError(f"request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"request body must be a JSON object with an 'inputs' list; got {type(body).__name__}")
    raw = body.get("inputs")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(
            f"request body needs a non-empty 'inputs' list of tensors (expected inputs: {[s.name for s in inputs]})"
        )
    blob = memoryview(binary if binary is not None else b"")
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for t in raw:
        size = ((t.get("parameters") or {}) if isinstance(t, dict) else {}).get("binary_data_size")
        chunk = None
        if size is not None:
            name = t.get("name", "?")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ProtocolError(f"input {name!r}: parameters.binary_data_size must be a byte count; got {size!r}")
            if offset + size > len(blob):
                raise ProtocolError(
                    f"input {name!r}: parameters.binary_data_size={size} but only {len(blob) - offset} bytes of "
                    "binary data remain after the JSON header (Inference-Header-Content-Length); truncated payload"
                )
            chunk, offset = blob[offset : offset + size], offset + size
        name, arr = tensor_from_json(t, raw=chunk)
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given more than once")
        arrays[name], datatypes[name] = arr, t["datatype"]
    if offset != len(blob):
        raise ProtocolError(
            f"{len(blob) - offset} bytes of binary data follow the JSON header but no input's "
            "parameters.binary_data_size accounts for them"
        )
    n = check_inputs(arrays, datatypes, inputs)
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be an object")
    wanted, binary_out = None, set()
    if body.get("outputs") is not None:
        req_out = body["outputs"]
        if not isinstance(req_out, list) or not all(isinstance(o, dict) and "name" in o for o in req_out):
            raise ProtocolError("'outputs' must be a list of objects with a 'name'")
        wanted = requested_outputs([str(o["name"]) for o in req_out], outputs)
        binary_out = {str(o["name"]) for o in req_out if (o.get("parameters") or {}).get("binary_data")}
    if params.get("binary_data_output"):
        binary_out |= set(wanted if wanted is not None else [s.name for s in outputs])
    rid = body.get("id")
    return InferRequest(
        inputs=arrays,
        n=n,
        id=None if rid is None else str(rid),
        outputs=wanted,
        parameters=params,
        binary=binary_out,
        timeout_s=timeout_parameter(params),
    )


def encode_infer_response(
    model: str,
    version: str,
    outputs: dict[str, np.ndarray],
    request_id: str | None = None,
    wanted: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    binary: Collection[str] = (),
) -> dict[str, Any]:
    """The OIP infer response body for ``outputs`` (filtered to ``wanted`` when given). Outputs named in
    ``binary`` carry ``parameters.binary_data_size`` instead of ``data`` (their bytes: ``array_to_raw``)."""
    names = wanted if wanted is not None else list(outputs)
    tensors = []
    for n in names:
        if n in binary:
            arr = np.asarray(outputs[n])
            tensors.append(
                {
                    "name": n,
                    "shape": list(arr.shape),
                    "datatype": dtype_to_datatype(arr.dtype),
                    "parameters": {"binary_data_size": len(array_to_raw(arr)) if arr.dtype == object else arr.nbytes},
                }
            )
        else:
            tensors.append(tensor_to_json(n, outputs[n]))
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    return body
