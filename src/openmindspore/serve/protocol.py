"""KServe v2 / Open Inference Protocol (OIP) JSON tensors: parsing, validation and encoding.

A request body is ``{"id"?, "inputs": [{"name", "shape", "datatype", "data"}], "outputs"?: [{"name"}],
"parameters"?}``; ``data`` is row-major (flat, or nested lists that flatten to ``prod(shape)``
elements). The first dimension of every tensor is the batch (sample) dimension; model metadata
reports it as ``-1``. Everything here is plain numpy and runs without Ray or MindSpore.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

__all__ = [
    "DATATYPES",
    "Datatype",
    "ProtocolError",
    "TensorSpec",
    "InferRequest",
    "parse_infer_request",
    "encode_infer_response",
    "dtype_to_datatype",
    "datatype_to_dtype",
    "tensor_to_json",
    "tensor_from_json",
]

#: an OIP tensor datatype this server handles (BYTES is not supported by numeric models)
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
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
    """numpy dtype -> OIP datatype name (``float32`` -> ``FP32``)."""
    dt = np.dtype(dtype)
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
    """A validated inference request: ``inputs[name]`` has shape ``(n, *spec.shape)``."""

    inputs: dict[str, np.ndarray]
    n: int
    id: str | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list = []
        for row in data:
            out.extend(_flatten(row))
        return out
    return data


def tensor_from_json(t: Any, where: str = "input") -> tuple[str, np.ndarray]:
    """One OIP JSON tensor -> ``(name, array)``; raises ``ProtocolError`` naming what is wrong."""
    if not isinstance(t, dict):
        raise ProtocolError(
            f"each {where} must be an object with name, shape, datatype and data; got {type(t).__name__}"
        )
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in t]
    name = t.get("name", "?")
    if missing:
        raise ProtocolError(f"{where} {name!r} is missing field(s) {missing}; expected name, shape, datatype and data")
    shape = t["shape"]
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ProtocolError(f"{where} {name!r}: shape must be a list of non-negative integers; received {shape!r}")
    try:
        dtype = datatype_to_dtype(t["datatype"])
    except ValueError as e:
        raise ProtocolError(f"{where} {name!r}: {e}") from None
    flat = _flatten(t["data"])
    expected = int(np.prod(shape)) if shape else 1
    if len(flat) != expected:
        raise ProtocolError(f"{where} {name!r}: shape {shape} needs {expected} elements in data; received {len(flat)}")
    try:
        arr = np.asarray(flat, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"{where} {name!r}: data is not valid {t['datatype']} ({e})") from None
    return str(name), arr


def tensor_to_json(name: str, arr: np.ndarray) -> dict[str, Any]:
    """numpy array -> OIP JSON tensor (row-major flat ``data``)."""
    arr = np.asarray(arr)
    return {
        "name": name,
        "shape": list(arr.shape),
        "datatype": dtype_to_datatype(arr.dtype),
        "data": arr.reshape(-1).tolist(),
    }


def parse_infer_request(
    body: bytes | str | dict, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()
) -> InferRequest:
    """Parse and validate an infer request body against a model's input specs.

    Every declared input must be present once, with the declared datatype and per-sample shape, and
    all inputs must agree on the batch size ``n >= 1``. Raises ``ProtocolError`` (HTTP 400) otherwise.
    """
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ProtocolError(f"request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"request body must be a JSON object with an 'inputs' list; got {type(body).__name__}")
    raw = body.get("inputs")
    if not isinstance(raw, list) or not raw:
        raise ProtocolError(
            f"request body needs a non-empty 'inputs' list of tensors (expected inputs: {[s.name for s in inputs]})"
        )
    specs = {s.name: s for s in inputs}
    arrays: dict[str, np.ndarray] = {}
    for t in raw:
        name, arr = tensor_from_json(t)
        if name not in specs:
            raise ProtocolError(f"unknown input {name!r}; expected inputs {sorted(specs)}")
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given more than once")
        spec = specs[name]
        if t["datatype"] != spec.datatype:
            raise ProtocolError(f"input {name!r}: expected datatype {spec.datatype}, received {t['datatype']}")
        if arr.ndim != len(spec.shape) + 1 or tuple(arr.shape[1:]) != spec.shape:
            raise ProtocolError(f"input {name!r}: expected shape {[-1, *spec.shape]}, received {list(arr.shape)}")
        if arr.shape[0] < 1:
            raise ProtocolError(f"input {name!r}: batch dimension must be >= 1, received shape {list(arr.shape)}")
        arrays[name] = arr
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise ProtocolError(f"missing input(s) {missing}; expected inputs {sorted(specs)}")
    sizes = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ProtocolError(f"inputs disagree on the batch dimension: {sizes}")
    wanted = None
    if body.get("outputs") is not None:
        req_out = body["outputs"]
        if not isinstance(req_out, list) or not all(isinstance(o, dict) and "name" in o for o in req_out):
            raise ProtocolError("'outputs' must be a list of objects with a 'name'")
        known = {s.name for s in outputs}
        wanted = [str(o["name"]) for o in req_out]
        bad = [w for w in wanted if known and w not in known]
        if bad:
            raise ProtocolError(f"unknown output(s) {bad}; expected outputs {sorted(known)}")
    rid = body.get("id")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be an object")
    return InferRequest(
        inputs=arrays,
        n=next(iter(sizes.values())),
        id=None if rid is None else str(rid),
        outputs=wanted,
        parameters=params,
    )


def encode_infer_response(
    model: str,
    version: str,
    outputs: dict[str, np.ndarray],
    request_id: str | None = None,
    wanted: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OIP infer response body for ``outputs`` (filtered to ``wanted`` when given)."""
    names = wanted if wanted is not None else list(outputs)
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "outputs": [tensor_to_json(n, outputs[n]) for n in names],
    }
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    return body
