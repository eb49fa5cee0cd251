"""``TrainState``: everything needed to continue a run exactly, with exact byte serialisation.

State = model parameters (incl. batch-norm statistics), optimizer state, step, RNG key, sampler
position, sample accounting and other arrays a run's results depend on (``arrays``: the saliency maps of
key-feature augmentation). Randomness is counter-based (keyed by ``(seed, step, sample)``), so the
RNG state is the seed plus the step. Bytes are a safetensors blob whose metadata holds the scalars.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import save as st_save

from openmindspore.data.sampler import SamplerState
from openmindspore.errors import OMSError

__all__ = ["TrainState", "params_sha256"]


def params_sha256(params: dict[str, np.ndarray]) -> str:
    """SHA-256 of all parameters as float32 bytes, in sorted-name order."""
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(np.ascontiguousarray(params[name], dtype=np.float32).tobytes())
    return h.hexdigest()


@dataclass
class TrainState:
    params: dict[str, np.ndarray]
    opt_state: dict[str, np.ndarray]
    step: int
    sampler: SamplerState
    seed: int
    samples_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def params_sha256(self) -> str:
        return params_sha256(self.params)

    def to_bytes(self) -> bytes:
        tensors = {f"param/{k}": np.ascontiguousarray(v) for k, v in self.params.items()}
        tensors.update({f"opt/{k}": np.ascontiguousarray(v) for k, v in self.opt_state.items()})
        tensors.update({f"arr/{k}": np.ascontiguousarray(v) for k, v in self.arrays.items()})
        meta = {
            "step": self.step,
            "sampler": self.sampler.to_dict(),
            "seed": self.seed,
            "samples_seen": self.samples_seen,
            "extra": self.extra,
        }
        return st_save(tensors, metadata={"oms": json.dumps(meta)})

    @classmethod
    def from_bytes(cls, blob: bytes) -> TrainState:
        from safetensors.numpy import load as st_load

        try:
            (n,) = struct.unpack("<Q", blob[:8])
            header = json.loads(blob[8 : 8 + n])
            meta = json.loads(header["__metadata__"]["oms"])
            tensors = st_load(blob)
        except Exception as e:  # noqa: BLE001 - any corruption is reported the same way
            raise OMSError(f"checkpoint is not a valid OpenMindSpore train state ({type(e).__name__}: {e})") from None
        params = {k[6:]: v for k, v in tensors.items() if k.startswith("param/")}
        opt = {k[4:]: v for k, v in tensors.items() if k.startswith("opt/")}
        arrays = {k[4:]: v for k, v in tensors.items() if k.startswith("arr/")}
        return cls(
            params=params,
            opt_state=opt,
            step=int(meta["step"]),
            sampler=SamplerState(**meta["sampler"]),
            seed=int(meta["seed"]),
            samples_seen=int(meta["samples_seen"]),
            extra=meta.get("extra", {}),
            arrays=arrays,
        )
