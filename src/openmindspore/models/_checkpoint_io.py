"""Checkpoint files: read tensors from ``.safetensors`` and PyTorch ``.bin`` (zip) files into numpy
without torch, and load a MindSpore ``.ckpt`` into a model strictly.

* safetensors: parsed directly (8-byte header length, JSON header, raw little-endian data) so that
  bfloat16 works (numpy has no bfloat16; it is widened to float32 exactly).
* PyTorch zip checkpoints (``torch.save`` since 1.6): a *restricted* unpickler that only understands
  tensor rebuilding, typed storages and ``OrderedDict``; anything else is refused, so loading a checkpoint
  never executes arbitrary code. Legacy (pre-1.6, non-zip) files are rejected with a fix.
* MindSpore ``.ckpt`` (:func:`load_checkpoint`): every parameter present with its shape and nothing
  extra, or a :class:`~openmindspore.errors.ConfigError` listing the differences; never a partial load.
"""

from __future__ import annotations

import collections
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openmindspore.errors import ConfigError

if TYPE_CHECKING:
    from mindspore import nn

__all__ = ["read_tensors", "read_safetensors", "read_torch_zip", "load_checkpoint", "format_keys"]

_ST_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _safetensors_header(path: Path, fh: Any, size: int) -> tuple[dict[str, Any], int]:
    """The JSON header of an open safetensors file and the offset its data starts at."""
    head = fh.read(8)
    if len(head) < 8:
        raise ConfigError("checkpoint", str(path), "a safetensors file", "the file is truncated")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
        raise ConfigError("checkpoint", str(path), "a safetensors file", "its header runs past the end of the file")
    try:
        header = json.loads(fh.read(n))
    except ValueError:
        raise ConfigError(
            "checkpoint",
            str(path),
            "a safetensors file (JSON header)",
            "the file is not safetensors; pass a .safetensors or PyTorch .bin file",
        ) from None
    return header, 8 + n


def read_safetensors(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file whose names start with ``prefix`` (stripped), as numpy arrays
    (bf16 -> float32). Only those tensors' bytes are read: ``prefix="param/"`` reads a train state's weights
    without its optimizer state."""
    p = Path(path)
    size = p.stat().st_size
    out: dict[str, np.ndarray] = {}
    with open(p, "rb") as fh:
        header, base = _safetensors_header(p, fh, size)
        for name, meta in header.items():
            if name == "__metadata__" or not name.startswith(prefix):
                continue
            a, b = meta["data_offsets"]
            if base + b > size:
                raise ConfigError(f"checkpoint[{name}]", str(path), "a complete safetensors file", "it is truncated")
            fh.seek(base + a)
            buf = fh.read(b - a)
            shape = tuple(meta["shape"])
            if meta["dtype"] == "BF16":
                arr = _bf16_to_f32(np.frombuffer(buf, dtype="<u2"))
            elif meta["dtype"] in _ST_DTYPES:
                arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[meta["dtype"]]).newbyteorder("<"))
            else:
                raise ConfigError(f"checkpoint[{name}].dtype", meta["dtype"], f"one of {sorted(_ST_DTYPES) + ['BF16']}")
            out[name[len(prefix) :]] = arr.reshape(shape).copy()
    return out


class _Storage:
    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype


_TORCH_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bf16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if len(size) == 0:
        return storage[offset : offset + 1].reshape(()).copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: Any, zf: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(fh)
        self.zf, self.prefix = zf, prefix
        self.cache: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _TORCH_STORAGES:
            return _Storage(_TORCH_STORAGES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint (only tensors allowed)")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage, key = pid[0], pid[1], str(pid[2])
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if key not in self.cache:
            raw = self.zf.read(f"{self.prefix}/data/{key}")
            if storage.dtype == "bf16":
                self.cache[key] = _bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
            else:
                self.cache[key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
        return self.cache[key]


def read_torch_zip(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a ``torch.save``'d state dict (zip format) as numpy arrays, without importing torch."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            "checkpoint",
            str(path),
            "a PyTorch zip checkpoint (torch >= 1.6) or .safetensors",
            "re-save it with a recent torch or convert it to .safetensors",
        )
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise ConfigError("checkpoint", str(path), "a PyTorch checkpoint containing data.pkl")
        prefix = pkl[0][: -len("/data.pkl")]
        with zf.open(pkl[0]) as fh:
            try:
                obj = _Unpickler(fh, zf, prefix).load()
            except pickle.UnpicklingError as e:
                raise ConfigError("checkpoint", str(path), "a plain state dict of tensors", str(e)) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConfigError("checkpoint", str(path), "a state dict (name -> tensor)")
    return {str(k): np.asarray(v) for k, v in obj.items()}


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Dispatch on the file: safetensors or PyTorch zip."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("checkpoint", str(path), "an existing file", "check the path")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK":
        return read_torch_zip(p)
    return read_safetensors(p)


def format_keys(keys: list[str], limit: int = 12) -> str:
    """At most ``limit`` sorted keys, comma-separated, with the number left out."""
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_checkpoint(model: nn.Cell, path: str | Path) -> None:
    """Load a MindSpore ``.ckpt`` strictly: every parameter present with the right shape, nothing extra."""
    import mindspore as ms
    from mindspore import Tensor

    p = Path(path)
    if not p.is_file():
        raise ConfigError("weights", str(path), "an existing .ckpt file", "run `oms convert-hf` first")
    params = ms.load_checkpoint(str(p))
    target = {q.name: tuple(q.shape) for q in model.get_parameters()}
    missing = [n for n in target if n not in params]
    unexpected = [n for n in params if n not in target]
    shapes = [
        f"{n}: {tuple(params[n].shape)} vs {target[n]}"
        for n in target
        if n in params and tuple(params[n].shape) != target[n]
    ]
    if missing or unexpected or shapes:
        raise ConfigError(
            "weights",
            str(path),
            "a checkpoint for this model",
            f"missing: {format_keys(missing)}; unexpected: {format_keys(unexpected)}; shapes: {format_keys(shapes)}",
        )
    for q in model.get_parameters():
        q.set_data(Tensor(params[q.name].asnumpy()))
