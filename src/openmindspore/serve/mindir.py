"""Exported models: ``oms export RUN --format mindir`` (MindSpore's ``ms.export``) and the ``mindir`` predictor kind.

``export_mindir(run, out)`` writes ``OUT.mindir`` — the run's model as a MindSpore IR graph with a dynamic
batch dimension — and ``OUT.json`` beside it: the OIP signature (inputs/outputs), the task, class names, the
source run and checkpoint step, and the MindIR file's SHA-256. The graph is built from MindSpore's own layers
(``OMS_CPU_KERNELS=0`` in a child process): the project's C++ kernels are ``Custom`` aot operators whose
library a MindIR file cannot carry, so a graph made with them would not load elsewhere. Same weights, same
function; outputs agree with the run served directly to float rounding (tested).

``oms serve OUT.mindir`` serves such a file (kind ``mindir``, claimed by the ``.json`` beside it): the replica
loads the graph with ``ms.load`` + ``nn.GraphCell`` — no model code, no run directory. The SHA-256 is checked
where the source is resolved, before anything deploys. A run on the user's files exports its preprocessing
in the ``.json`` (``preprocessing``; ``model_input`` is the graph's per-sample input): the file takes the same
raw inputs as the run (:mod:`openmindspore.serve.raw_inputs`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError, OMSError
from openmindspore.serve.outputs import ModelOutputs
from openmindspore.serve.predictor import RunOptions
from openmindspore.serve.protocol import TensorSpec
from openmindspore.serve.raw_inputs import InputMode, RunInputs, run_inputs
from openmindspore.serve.registry import Predictor, ResolvedSource, register_predictor, resolve_source
from openmindspore.serve.run_model import file_sha256

__all__ = ["MindIRPredictor", "export_mindir", "mindir_file"]

FORMAT = "oms-mindir-1"


def mindir_file(p: Path) -> Path | None:
    """``p`` when it is a ``.mindir`` written by ``oms export`` (its ``.json`` beside it), else None."""
    if p.suffix != ".mindir" or not p.is_file():
        return None
    side = p.with_suffix(".json")
    if not side.is_file():
        raise ConfigError(
            "model", str(p), f"a MindIR file with its {side.name} (written by `oms export`)", "export it again"
        )
    return p


def export_mindir(source: str | Path, out: str | Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """Export ``source`` (an ``oms train`` run or one of its checkpoints) to ``out`` (``.mindir``); returns the
    sidecar written beside it. Raises ``ConfigError`` for a source that cannot be exported."""
    rs = resolve_source(source)  # a bad path, option or corrupted checkpoint fails here, in this process
    if rs.kind != "trained":
        raise ConfigError(
            "RUN", str(source), "an `oms train` run (classification or regression)", f"{rs.kind!r} models do not export"
        )
    target = Path(out).expanduser().resolve()
    if target.suffix != ".mindir":
        raise ConfigError("--out", str(out), "a file name ending in .mindir")
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMS_CPU_KERNELS="0", GLOG_v=os.environ.get("GLOG_v", "3"))
    cmd = [sys.executable, "-m", "openmindspore.serve.mindir", str(rs.source), str(target)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise OMSError(f"exporting {source} to {target} failed: {last[0][:400]}")
    return json.loads(target.with_suffix(".json").read_text())


def _export_here(source: str, target: Path) -> None:
    """The child process: build the predictor with MindSpore-only layers and ``ms.export`` its model."""
    import mindspore as ms
    from mindspore import Tensor

    from openmindspore.serve.predictor import ClassifierPredictor
    from openmindspore.serve.registry import load_predictor

    pred = load_predictor(source)
    assert isinstance(pred, ClassifierPredictor)
    x = Tensor(shape=[None, *pred.signature.input_shape], dtype=ms.float32)
    target.unlink(missing_ok=True)  # ms.export writes the file read-only
    ms.export(pred.model, x, file_name=str(target.with_suffix("")), file_format="MINDIR")
    target.chmod(0o644)
    meta = pred.metadata()
    sidecar = {
        "format": FORMAT,
        "task": pred.task,
        "inputs": meta["inputs"],
        "outputs": meta["outputs"],
        "model": meta.get("model"),
        "class_names": meta.get("class_names"),
        "model_input": list(pred.signature.input_shape),
        "preprocessing": None if pred.preprocessing is None else pred.preprocessing.to_dict(),
        "source": source,
        "checkpoint_step": meta.get("checkpoint_step"),
        "mindir_sha256": file_sha256(target),
        "created": time.time(),
    }
    target.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))


class MindIRPredictor(Predictor):
    """A model exported with ``oms export``: the MindIR graph and the signature from its ``.json``.

    A user-data run's export carries its preprocessing in the ``.json``: served, it takes the same raw
    inputs as the run itself (``?input=encoded`` too). Older exports (no ``model_input``) take the graph's input.
    """

    kind = "mindir"

    def __init__(self, path: Path, sidecar: dict[str, Any], mode: InputMode = "pixels") -> None:
        import mindspore as ms
        from mindspore import Tensor, nn

        self.graph = nn.GraphCell(ms.load(str(path)))
        self._tensor = Tensor
        self.sidecar = sidecar
        self.task = sidecar["task"]
        self.raw = _sidecar_inputs(sidecar, mode)
        logits = TensorSpec.from_metadata(sidecar["outputs"][0])
        n_out = int(logits.shape[0]) if self.task == "classification" else 1
        self.answer = ModelOutputs(self.task, n_out, sidecar.get("class_names"))
        self.inputs, self.outputs = self.raw.specs, self.answer.specs

    def warmup(self) -> None:
        self.predict(self.raw.example())

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.graph(self._tensor(self.raw.to_model(inputs)))
        return self.answer((out[0] if isinstance(out, tuple) else out).asnumpy())

    def metadata(self) -> dict[str, Any]:
        d = super().metadata()
        d.update({k: self.sidecar[k] for k in ("model", "checkpoint_step", "class_names") if self.sidecar.get(k)})
        if self.raw.kind != "model":
            d["preprocessing"] = self.raw.kind
        return d


def _sidecar_inputs(sidecar: dict[str, Any], mode: InputMode) -> RunInputs:
    """The export's raw-input contract: its saved preprocessing over the graph's input (``ConfigError`` if the
    options do not fit)."""
    from openmindspore.data.preprocess import Preprocessor

    shape = sidecar.get("model_input") or TensorSpec.from_metadata(sidecar["inputs"][0]).shape
    pre = sidecar.get("preprocessing")
    return run_inputs(tuple(int(s) for s in shape), None if pre is None else Preprocessor.from_dict(pre), mode)


def _prepare_mindir(rs: ResolvedSource) -> ResolvedSource:
    """Driver side: read the sidecar and check the MindIR file's SHA-256 before anything deploys."""
    assert rs.checkpoint is not None
    side = rs.checkpoint.with_suffix(".json")
    try:
        sidecar = json.loads(side.read_text())
        want = str(sidecar["mindir_sha256"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError("model", str(side), "the JSON `oms export` writes beside the MindIR file", str(e)) from None
    if file_sha256(rs.checkpoint) != want:
        raise ConfigError(
            "model",
            str(rs.checkpoint),
            f"a MindIR file whose SHA-256 matches {side.name}",
            "it is corrupted or was replaced; export it again",
        )
    _sidecar_inputs(sidecar, rs.options_as(RunOptions).input)
    return replace(rs, details={"sidecar": sidecar})


@register_predictor("mindir", options=RunOptions, claims=mindir_file, prepare=_prepare_mindir)
def _load_mindir(rs: ResolvedSource) -> Predictor:
    assert rs.checkpoint is not None
    return MindIRPredictor(rs.checkpoint, rs.details["sidecar"], rs.options_as(RunOptions).input)


if __name__ == "__main__":  # the export child process (see export_mindir)
    _export_here(sys.argv[1], Path(sys.argv[2]))
