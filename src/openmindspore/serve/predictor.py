"""The built-in predictors: ``identity`` (numpy, for measuring the server) and ``trained`` (``oms train`` runs).

Both register with the predictor registry (:mod:`openmindspore.serve.registry`), which owns the
``Predictor`` interface and resolves sources; this module knows no other kind.

- ``builtin:identity[?dim=N|shape=AxBxC&datatype=FP32|UINT8|BYTES&delay_ms=MS]``: ``IdentityPredictor``, ``y = x``.
- an ``oms train`` run directory or one of its ``checkpoints/step_*.safetensors``: ``ClassifierPredictor``
  (kind ``trained``; option ``input=pixels|encoded`` for image runs), loaded from config + signature +
  verified weights (``run_model.py``); runs on the user's files take raw inputs (``raw_inputs.py``).
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

from openmindspore.serve.outputs import ModelOutputs
from openmindspore.serve.protocol import Datatype, TensorSpec
from openmindspore.serve.raw_inputs import InputMode, run_inputs
from openmindspore.serve.registry import Predictor, ResolvedSource, register_predictor
from openmindspore.serve.run_model import (
    RunSignature,
    load_run_model,
    model_label,
    run_signature,
    saved_preprocessing,
    verified_checkpoint,
)
from openmindspore.serve.user_code import code_folders

__all__ = ["ClassifierPredictor", "IdentityOptions", "IdentityPredictor", "RunOptions", "calibrated"]


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


class RunOptions(BaseModel):
    """``RUN?input=encoded``: how an image run takes its images (see :mod:`openmindspore.serve.raw_inputs`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputMode = Field(
        default="pixels", description="image runs: pixels (UINT8 [H, W, C]) or encoded (one image file, BYTES)"
    )


class ClassifierPredictor(Predictor):
    """A model trained by ``oms train`` (a registered model or the user's ``model.class_path``).

    Inputs: the run's raw-input contract (:mod:`~openmindspore.serve.raw_inputs`: ``x`` FP32 for runs on a
    built-in dataset; one tensor per CSV column, ``image`` or raw ``x`` for runs on the user's files, put
    through the run's saved preprocessing here). Outputs: :mod:`~openmindspore.serve.outputs` (``logits``,
    ``label`` and, with class names, ``class_name``; ``prediction`` for regression; plus ``probabilities`` FP32
    ``(C,)`` and ``abstain`` BOOL ``()`` when the run has ``calibration.json``). Built from the run's
    config, signature and one verified checkpoint's weights (:mod:`openmindspore.serve.run_model`), never
    from a trainer: no dataset, no optimizer.
    """

    kind = "trained"

    def __init__(
        self,
        run_dir: Path,
        checkpoint: Path,
        signature: RunSignature,
        step: int | None = None,
        code_path: list[str] | None = None,
        mode: InputMode = "pixels",
    ) -> None:
        import yaml
        from mindspore import Tensor

        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        self.model = load_run_model(config, signature, checkpoint, code_path)
        self._tensor = Tensor
        self.signature = signature
        self.task = signature.task
        self.step = step
        self.preprocessing = saved_preprocessing(run_dir)
        self.raw = run_inputs(signature.input_shape, self.preprocessing, mode)
        self.answer = ModelOutputs(signature.task, signature.num_outputs, signature.class_names)
        self.inputs, self.outputs = self.raw.specs, list(self.answer.specs)
        cal = run_dir / "calibration.json"
        self.calibration = json.loads(cal.read_text()) if self.task == "classification" and cal.is_file() else None
        if self.calibration is not None:
            n = signature.num_outputs
            self.outputs += [TensorSpec("probabilities", "FP32", (n,)), TensorSpec("abstain", "BOOL", ())]
        self.model_name = model_label(config)

    def warmup(self) -> None:
        self.predict(self.raw.example())

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model(self._tensor(self.raw.to_model(inputs)))
        answer = self.answer((out[0] if isinstance(out, tuple) else out).asnumpy())
        if self.calibration is not None:
            answer["probabilities"], answer["abstain"] = calibrated(answer["logits"], self.calibration)
        return answer

    def metadata(self) -> dict[str, Any]:
        d = super().metadata()
        d.update(model=self.model_name, checkpoint_step=self.step)
        if self.calibration is not None:
            d["calibration"] = self.calibration
        if self.signature.class_names is not None:
            d["class_names"] = list(self.signature.class_names)
        if self.preprocessing is not None:
            d.update(source_format=self.preprocessing.source_format, preprocessing=self.raw.kind)
        return d


def _prepare_trained(rs: ResolvedSource) -> ResolvedSource:
    """Driver side: verify the checkpoint against its manifest, pin it, the run's signature and where a user
    model's code is; check the options fit the run."""
    import yaml

    assert rs.run_dir is not None
    checkpoint, manifest = verified_checkpoint(rs.run_dir, rs.checkpoint)
    config = yaml.safe_load((rs.run_dir / "config.yaml").read_text()) or {}
    signature = run_signature(rs.run_dir, config)
    run_inputs(signature.input_shape, saved_preprocessing(rs.run_dir), rs.options_as(RunOptions).input)
    details = {
        "signature": signature.to_dict(),
        "step": manifest.get("step"),
        "code_path": code_folders(rs.run_dir, config.get("model") or {}),
    }
    return replace(rs, checkpoint=checkpoint, details=details)


@register_predictor("trained", options=RunOptions, prepare=_prepare_trained)
def _load_trained(rs: ResolvedSource) -> Predictor:
    assert rs.run_dir is not None and rs.checkpoint is not None  # prepared
    signature = RunSignature.from_dict(rs.details["signature"])
    mode = rs.options_as(RunOptions).input
    return ClassifierPredictor(
        rs.run_dir, rs.checkpoint, signature, rs.details.get("step"), rs.details.get("code_path"), mode
    )
