"""A ``TrainState`` as a file in shared memory: written once by the worker that holds it, read back verified.

Owns no state. :func:`write_state` streams the state's arrays straight into the file in the safetensors
layout of :meth:`TrainState.to_bytes` (one copy, no intermediate blob; into an evicted snapshot's file
when the store has one to reuse) and hashes them on the way;
:func:`read_state` reads a file back and returns the state only if its SHA-256 is the recorded one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from openmindspore.train.state import TrainState

__all__ = ["write_state", "read_state", "sha256_file"]

_DTYPES = {
    "float32": "F32",
    "float64": "F64",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
}


def _tensors(state: TrainState) -> dict[str, np.ndarray]:
    # the names and metadata of TrainState.to_bytes, so TrainState.from_bytes reads the file
    tensors = {f"param/{k}": v for k, v in state.params.items()}
    tensors.update({f"opt/{k}": v for k, v in state.opt_state.items()})
    tensors.update({f"arr/{k}": v for k, v in state.arrays.items()})
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def write_state(state: TrainState, path: str | Path, reuse: str | None = None) -> tuple[str, int]:
    """Write ``state`` to ``path`` (a temporary name, then renamed); returns (SHA-256, size in bytes).
    ``reuse``: a file of the same store that is no longer needed (an evicted snapshot); when it is there it
    becomes the temporary file and is overwritten in place, every byte (then truncated to the new size):
    writing into memory that tmpfs has already allocated costs about a third of writing a new file."""
    tensors = _tensors(state)
    header: dict[str, object] = {}
    offset = 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {
            "dtype": _DTYPES[a.dtype.name],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    meta = {
        "step": state.step,
        "sampler": state.sampler.to_dict(),
        "seed": state.seed,
        "samples_seen": state.samples_seen,
        "extra": state.extra,
    }
    header["__metadata__"] = {"oms": json.dumps(meta)}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    h = hashlib.sha256()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    mode = "wb"
    if reuse is not None:
        try:
            os.rename(reuse, tmp)  # atomic: of two writers racing for it, one gets it
            mode = "r+b"
        except OSError:
            pass
    try:
        with open(tmp, mode, buffering=0) as f:
            for chunk in (len(head).to_bytes(8, "little"), head):
                h.update(chunk)
                f.write(chunk)
            for name in sorted(tensors):
                data = memoryview(tensors[name].reshape(-1).view(np.uint8))  # type: ignore[arg-type]
                h.update(data)
                f.write(data)
            f.truncate()  # a reused file that was longer
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h.hexdigest(), 8 + len(head) + offset


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def read_state(path: str | Path, sha256: str) -> TrainState | None:
    """The state in ``path`` if its SHA-256 is ``sha256``; None when the file is gone or differs."""
    from openmindspore.errors import OMSError
    from openmindspore.train.state import TrainState

    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(blob).hexdigest() != sha256:
        return None
    try:
        return TrainState.from_bytes(blob)
    except OMSError:
        return None
