"""Predictors: the seam between a served model and the server.

A predictor turns a batch of numpy inputs into numpy outputs (preprocess -> MindSpore forward ->
postprocess) and declares its input/output ``TensorSpec``s (per-sample shapes; the batch dimension is
implicit). The server only ever sees this interface, so a new model family plugs in by registering a
*kind*::

    @register_predictor("detector")
    def _load_detector(run_dir: Path, checkpoint: Path | None) -> Predictor: ...

    MODEL_KINDS["yolos"] = "detector"     # run dirs whose config says model.name == "yolos"

A *source* is a run directory written by ``oms train``, one of its checkpoint files
(``RUN/checkpoints/step_*.safetensors``), a YOLOS detection run or ``MODEL.ckpt`` + ``MODEL.json``
(``detector.py``), or ``builtin:identity[?dim=N]`` (a numpy identity used to measure pure serving
overhead). ``SOURCE?key=value&...`` passes options to the predictor.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.serve.protocol import TensorSpec

__all__ = [
    "Predictor",
    "ClassifierPredictor",
    "IdentityPredictor",
    "MODEL_KINDS",
    "register_predictor",
    "load_predictor",
    "resolve_source",
    "ResolvedSource",
]

log = logging.getLogger(__name__)


class Predictor(ABC):
    """Batch in, batch out. ``inputs``/``outputs`` give per-sample shapes (no batch dimension)."""

    kind: str = "abstract"
    platform: str = "mindspore"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs[name]``: ``(n, *spec.shape)`` -> ``outputs[name]``: ``(n, *spec.shape)``."""

    def warmup(self) -> None:
        """Run one zero sample through the model so the first request does not pay the first-call cost."""
        self.predict({s.name: np.zeros((1, *s.shape), dtype=_np_dtype(s.datatype)) for s in self.inputs})

    def metadata(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "kind": self.kind,
            "inputs": [s.metadata() for s in self.inputs],
            "outputs": [s.metadata() for s in self.outputs],
        }


def _np_dtype(datatype: str) -> np.dtype:
    from openmindspore.serve.protocol import datatype_to_dtype

    return datatype_to_dtype(datatype)


class ResolvedSource:
    """Where a model comes from: ``kind`` plus a run directory and optional explicit checkpoint."""

    def __init__(
        self,
        source: str,
        kind: str,
        run_dir: Path | None = None,
        checkpoint: Path | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.source, self.kind, self.run_dir, self.checkpoint = source, kind, run_dir, checkpoint
        self.options = dict(options or {})

    def __repr__(self) -> str:
        return f"ResolvedSource({self.source!r}, kind={self.kind!r})"


#: model name (``model.name`` in a run's config) -> predictor kind. Unlisted models use the dataset task.
MODEL_KINDS: dict[str, str] = {}
_LOADERS: dict[str, Callable[[ResolvedSource], Predictor]] = {}


def register_predictor(
    kind: str,
) -> Callable[[Callable[[ResolvedSource], Predictor]], Callable[[ResolvedSource], Predictor]]:
    """Decorator: ``loader(resolved_source) -> Predictor`` serves sources of ``kind``."""

    def deco(fn: Callable[[ResolvedSource], Predictor]) -> Callable[[ResolvedSource], Predictor]:
        _LOADERS[kind] = fn
        return fn

    return deco


def resolve_source(source: str | Path) -> ResolvedSource:
    """Check a source without importing MindSpore; raises ``ConfigError`` with the fix if it is unusable.

    ``PATH?key=value&...`` passes options to the predictor (e.g. a detector's ``threshold``).
    """
    s = str(source)
    if s.startswith("builtin:"):
        name, _, query = s[len("builtin:") :].partition("?")
        opts = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        if name not in _LOADERS or name != "identity":
            raise ConfigError("model", s, "a run directory, a checkpoint file, or builtin:identity[?dim=N&delay_ms=MS]")
        return ResolvedSource(s, name, options=opts)
    path, _, query = s.partition("?")
    opts = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
    p = Path(path).expanduser()
    from openmindspore.serve.detector import detector_source

    det = detector_source(p) if p.exists() else None
    if det is not None:
        return ResolvedSource(s, "detector", run_dir=det[0].parent, checkpoint=det[0], options=opts)
    checkpoint = None
    if p.is_file():
        if p.suffix != ".safetensors" or p.parent.name != "checkpoints":
            raise ConfigError(
                "model",
                s,
                "a run directory, RUN/checkpoints/step_*.safetensors, or a YOLOS MODEL.ckpt with its MODEL.json",
                "pass the --out directory of `oms train` or one of its checkpoint files",
            )
        checkpoint, p = p, p.parent.parent
    if not p.exists():
        raise ConfigError("model", s, "an existing run directory or checkpoint file", "check the path")
    if not (p / "config.yaml").is_file():
        raise ConfigError(
            "model",
            s,
            "a run directory containing config.yaml (written by `oms train --out DIR`) "
            "or model.ckpt + model.json (a detection run)",
            "pass the --out directory of an earlier `oms train`",
        )
    if checkpoint is None and not (p / "checkpoints" / "LATEST").is_file():
        raise ConfigError(
            "model",
            s,
            "a run with at least one checkpoint (checkpoints/LATEST)",
            "train it further, or pass a checkpoint file",
        )
    import yaml

    cfg = yaml.safe_load((p / "config.yaml").read_text()) or {}
    model_name = str((cfg.get("model") or {}).get("name", ""))
    kind = MODEL_KINDS.get(model_name, "trained")
    return ResolvedSource(s, kind, run_dir=p, checkpoint=checkpoint, options=opts)


def load_predictor(source: str | Path | ResolvedSource) -> Predictor:
    """Build the predictor for ``source`` (imports MindSpore for trained models)."""
    import openmindspore.serve.detector  # noqa: F401 - registers the "detector" kind

    rs = source if isinstance(source, ResolvedSource) else resolve_source(source)
    if rs.kind not in _LOADERS:
        raise ConfigError(
            "model kind",
            rs.kind,
            f"one of {sorted(_LOADERS)}",
            "register a loader with openmindspore.serve.register_predictor",
        )
    return _LOADERS[rs.kind](rs)


class IdentityPredictor(Predictor):
    """``y = x`` in numpy: a trivial model for measuring the server's own per-request overhead.

    ``delay_ms`` (default 0) adds a fixed compute time per *batch* (a stand-in for a model whose cost
    hardly depends on the batch size, as on accelerators); ``source`` is ``builtin:identity?dim=4&delay_ms=5``.
    """

    kind = "identity"
    platform = "numpy"

    def __init__(self, dim: int = 4, delay_ms: float = 0.0) -> None:
        self.inputs = [TensorSpec("x", "FP32", (dim,))]
        self.outputs = [TensorSpec("y", "FP32", (dim,))]
        self.delay_s = delay_ms / 1000.0

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.delay_s:
            import time

            time.sleep(self.delay_s)
        return {"y": inputs["x"]}


@register_predictor("identity")
def _load_identity(rs: ResolvedSource) -> Predictor:
    try:
        return IdentityPredictor(int(rs.options.get("dim", 4)), float(rs.options.get("delay_ms", 0)))
    except ValueError:
        raise ConfigError("model", rs.source, "builtin:identity?dim=INT&delay_ms=FLOAT") from None


class ClassifierPredictor(Predictor):
    """A model trained by ``oms train``: input ``x`` FP32 ``data.input_shape``.

    Classification runs output ``logits`` FP32 ``(C,)`` and ``label`` INT64 ``()`` (argmax);
    regression runs output ``prediction`` FP32 ``(1,)``.
    """

    kind = "trained"

    def __init__(self, run_dir: Path, checkpoint: Path | None = None) -> None:
        from mindspore import Tensor

        from openmindspore.train.checkpoint import RunDir
        from openmindspore.train.config import config_from_dict
        from openmindspore.train.state import TrainState
        from openmindspore.train.trainer import Trainer

        run = RunDir(run_dir).require_run()
        trainer = Trainer(config_from_dict(run.read_config()))
        state = TrainState.from_bytes(checkpoint.read_bytes()) if checkpoint else run.load_latest()
        trainer.load_state(state)
        self.step = int(state.step)
        self.model = trainer.model
        self.model.set_train(False)
        self._tensor = Tensor
        self.task = trainer.task
        self.inputs = [TensorSpec("x", "FP32", tuple(int(s) for s in trainer.data.input_shape))]
        if self.task == "classification":
            self.outputs = [
                TensorSpec("logits", "FP32", (int(trainer.data.num_classes),)),
                TensorSpec("label", "INT64", ()),
            ]
        else:
            self.outputs = [TensorSpec("prediction", "FP32", (1,))]
        self.model_name = str(trainer.cfg.model.get("name"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(inputs["x"], dtype=np.float32)
        out = self.model(self._tensor(x))
        out = (out[0] if isinstance(out, tuple) else out).asnumpy().astype(np.float32, copy=False)
        if self.task == "classification":
            return {"logits": out, "label": out.argmax(axis=1).astype(np.int64)}
        return {"prediction": out.reshape(len(x), 1)}

    def metadata(self) -> dict[str, Any]:
        d = super().metadata()
        d.update(model=self.model_name, checkpoint_step=self.step)
        return d


@register_predictor("trained")
def _load_trained(rs: ResolvedSource) -> Predictor:
    assert rs.run_dir is not None
    return ClassifierPredictor(rs.run_dir, rs.checkpoint)
