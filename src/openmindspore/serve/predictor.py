"""The built-in predictors: ``identity`` (numpy, for measuring the server) and ``trained`` (``oms train`` runs).

Both register with the predictor registry (:mod:`openmindspore.serve.registry`), which owns the
``Predictor`` interface and resolves sources; this module knows no other kind.

- ``builtin:identity[?dim=N|shape=AxBxC&datatype=FP32|UINT8|BYTES&delay_ms=MS]``: ``IdentityPredictor``, ``y = x``.
- an ``oms train`` run directory or one of its ``checkpoints/step_*.safetensors``: ``ClassifierPredictor``
  (kind ``trained``; takes no options), loaded from config + signature + verified weights (``run_model.py``).
  A classifier run with ``calibration.json`` (``oms active`` writes one) also outputs calibrated
  ``probabilities`` and ``abstain`` (see :func:`calibrated`).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from openmindspore.serve.protocol import Datatype, TensorSpec
from openmindspore.serve.registry import Predictor, ResolvedSource, register_predictor
from openmindspore.serve.run_model import (
    RunSignature,
    load_run_model,
    run_signature,
    saved_preprocessing,
    verified_checkpoint,
)

__all__ = ["ClassifierPredictor", "IdentityOptions", "IdentityPredictor", "calibrated"]


def _shape(v: Any) -> Any:
    """``"3x224x224"`` -> ``(3, 224, 224)``; other forms pass through to validation."""
    if isinstance(v, str):
        try:
            return tuple(int(d) for d in v.lower().split("x"))
        except ValueError:
            raise ValueError("dimensions joined by 'x', e.g. shape=3x224x224") from None
    return v


class IdentityOptions(BaseModel):
    """``builtin:identity?dim=4&delay_ms=5`` or ``builtin:identity?shape=3x224x224`` (``shape`` wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(default=4, ge=1, le=1 << 20, description="features per sample")
    shape: Annotated[tuple[Annotated[int, Field(ge=1, le=1 << 20)], ...], BeforeValidator(_shape)] | None = Field(
        default=None, description="per-sample shape, e.g. 3x224x224 (default: (dim,))"
    )
    datatype: Literal["FP32", "UINT8", "BYTES"] = Field(default="FP32", description="the tensors' datatype")
    delay_ms: float = Field(default=0.0, ge=0, le=60_000, description="fixed compute time per batch")


class IdentityPredictor(Predictor):
    """``y = x`` in numpy: a trivial model for measuring the server's own per-request overhead.

    ``delay_ms`` (default 0) adds a fixed compute time per *batch* (a stand-in for a model whose cost
    hardly depends on the batch size, as on accelerators); ``source`` is ``builtin:identity?dim=4&delay_ms=5``.
    """

    kind = "identity"
    platform = "numpy"

    def __init__(
        self, dim: int = 4, delay_ms: float = 0.0, shape: tuple[int, ...] | None = None, datatype: Datatype = "FP32"
    ) -> None:
        shape = tuple(shape) if shape is not None else (dim,)
        self.inputs = [TensorSpec("x", datatype, shape)]
        self.outputs = [TensorSpec("y", datatype, shape)]
        self.delay_s = delay_ms / 1000.0

    def warmup(self) -> None:
        pass  # numpy: nothing to compile

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"y": inputs["x"]}


@register_predictor("identity", options=IdentityOptions, builtin=True)
def _load_identity(rs: ResolvedSource) -> Predictor:
    opts = rs.options_as(IdentityOptions)
    return IdentityPredictor(opts.dim, opts.delay_ms, opts.shape, opts.datatype)


def calibrated(logits: np.ndarray, calibration: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``oms active``'s calibration of a classifier's logits (N, C): probabilities
    ``softmax(max(log_softmax(logits), log_floor) / temperature)`` (N, C) FP32, and ``abstain`` (N,) BOOL:
    top probability below the certified ``threshold``, or always when nothing was certified."""
    z = np.asarray(logits, dtype=np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    z = np.maximum(logp, float(calibration["log_floor"])) / float(calibration["temperature"])
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    thr = calibration.get("threshold")
    abstain = np.ones(len(p), bool) if thr is None else p.max(axis=1) < float(thr)
    return p.astype(np.float32), abstain


class ClassifierPredictor(Predictor):
    """A model trained by ``oms train``: input ``x`` FP32 (the run's per-sample input shape).

    Classification runs output ``logits`` FP32 ``(C,)`` and ``label`` INT64 ``()`` (argmax), plus
    ``probabilities`` FP32 ``(C,)`` and ``abstain`` BOOL ``()`` when the run has ``calibration.json``;
    regression runs output ``prediction`` FP32 ``(1,)``. Built from the run's config, signature and one
    verified checkpoint's weights (:mod:`openmindspore.serve.run_model`), never from a trainer: no dataset,
    no optimizer.
    """

    kind = "trained"

    def __init__(self, run_dir: Path, checkpoint: Path, signature: RunSignature, step: int | None = None) -> None:
        import yaml
        from mindspore import Tensor

        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        self.model = load_run_model(config, signature, checkpoint)
        self._tensor = Tensor
        self.signature = signature
        self.task = signature.task
        self.step = step
        self.preprocessing = saved_preprocessing(run_dir)
        self.inputs = [TensorSpec("x", "FP32", signature.input_shape)]
        cal = run_dir / "calibration.json"
        self.calibration = json.loads(cal.read_text()) if self.task == "classification" and cal.is_file() else None
        if self.task == "classification":
            self.outputs = [
                TensorSpec("logits", "FP32", (signature.num_outputs,)),
                TensorSpec("label", "INT64", ()),
            ]
            if self.calibration is not None:
                self.outputs += [
                    TensorSpec("probabilities", "FP32", (signature.num_outputs,)),
                    TensorSpec("abstain", "BOOL", ()),
                ]
        else:
            self.outputs = [TensorSpec("prediction", "FP32", (1,))]
        self.model_name = str((config.get("model") or {}).get("name"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raw = inputs["x"]
        x = np.ascontiguousarray(raw if self.preprocessing is None else self.preprocessing.transform(raw), np.float32)
        out = self.model(self._tensor(x))
        out = (out[0] if isinstance(out, tuple) else out).asnumpy().astype(np.float32, copy=False)
        if self.task == "classification":
            res = {"logits": out, "label": out.argmax(axis=1).astype(np.int64)}
            if self.calibration is not None:
                res["probabilities"], res["abstain"] = calibrated(out, self.calibration)
            return res
        return {"prediction": out.reshape(len(x), 1)}

    def metadata(self) -> dict[str, Any]:
        d = super().metadata()
        d.update(model=self.model_name, checkpoint_step=self.step)
        if self.calibration is not None:
            d["calibration"] = self.calibration
        if self.signature.class_names is not None:
            d["class_names"] = list(self.signature.class_names)
        return d


def _prepare_trained(rs: ResolvedSource) -> ResolvedSource:
    """Driver side: verify the checkpoint against its manifest, pin it and the run's signature."""
    import yaml

    assert rs.run_dir is not None
    checkpoint, manifest = verified_checkpoint(rs.run_dir, rs.checkpoint)
    config = yaml.safe_load((rs.run_dir / "config.yaml").read_text()) or {}
    details = {"signature": run_signature(rs.run_dir, config).to_dict(), "step": manifest.get("step")}
    return replace(rs, checkpoint=checkpoint, details=details)


@register_predictor("trained", prepare=_prepare_trained)
def _load_trained(rs: ResolvedSource) -> Predictor:
    assert rs.run_dir is not None and rs.checkpoint is not None  # prepared
    signature = RunSignature.from_dict(rs.details["signature"])
    return ClassifierPredictor(rs.run_dir, rs.checkpoint, signature, rs.details.get("step"))
