"""Models, not trainers: what serving needs from an ``oms train`` run directory, and nothing else.

A run is served from its ``config.yaml`` (the model spec), a **signature** (task, per-sample input shape,
output size, class names) and one checkpoint's **weights** — never its dataset, optimizer or sampler:

- :func:`verified_checkpoint` (driver side, no MindSpore): the checkpoint to serve (``LATEST`` unless one is
  named), its SHA-256 checked against its manifest. A missing or corrupted checkpoint is one ``ConfigError``
  naming the file and the fix, before anything is deployed; the path is then pinned, so every replica (and
  every replacement) loads the same weights even if training moves ``LATEST``.
- :func:`run_signature` (driver side): from the run's saved preprocessing (``preprocess.json``, runs on user
  data) when present; else, for runs on a built-in dataset, from that dataset's shapes, looked up once by
  the driver (replicas receive the signature and never load data).
- :func:`load_run_model` (replica side): build the model from the spec and the signature — a registered
  model by name, or the user's own ``model.class_path`` (its code found as :mod:`~openmindspore.serve.user_code`
  says) with the arguments training gave it — and load the weights (only the ``param/*`` tensors of the train
  state are read) strictly: every parameter present with its shape, nothing extra.
- :func:`saved_preprocessing`: the run's fitted raw-input preprocessing (runs on the user's files), applied
  by the predictor before the model (:mod:`~openmindspore.serve.raw_inputs`); ``None`` for built-in datasets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from openmindspore.data.preprocess import Preprocessor
from openmindspore.errors import ConfigError

if TYPE_CHECKING:
    from mindspore import nn

__all__ = [
    "RunSignature",
    "load_run_model",
    "model_label",
    "run_signature",
    "saved_preprocessing",
    "verified_checkpoint",
]

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class RunSignature:
    """What the model takes and gives: ``input_shape`` per sample, ``num_outputs`` (classes, or 1)."""

    task: Task
    input_shape: tuple[int, ...]
    num_outputs: int
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSignature:
        names = d.get("class_names")
        return cls(d["task"], tuple(int(s) for s in d["input_shape"]), int(d["num_outputs"]), names and tuple(names))


def model_label(config: dict[str, Any]) -> str:
    """The run's model as its config names it: the registered name or the class path."""
    spec = config.get("model") or {}
    return str(spec.get("name") or spec.get("class_path") or spec.get("python_object"))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_checkpoint(run_dir: Path, checkpoint: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """``(checkpoint path, manifest)``: ``checkpoint`` or the run's ``LATEST``, checked against its manifest."""
    ckpt_dir = run_dir / "checkpoints"
    if checkpoint is None:
        latest = ckpt_dir / "LATEST"
        name = latest.read_text().strip() if latest.is_file() else ""
        if not name:
            raise ConfigError(
                "model", str(run_dir), "a run with at least one checkpoint (checkpoints/LATEST)", "train it further"
            )
        checkpoint = ckpt_dir / f"{name}.safetensors"
    if not checkpoint.is_file():
        raise ConfigError(
            "checkpoint",
            str(checkpoint),
            "an existing checkpoint file",
            "it is missing (deleted or never finished); pass another RUN/checkpoints/step_*.safetensors",
        )
    manifest_path = checkpoint.with_suffix(".json")
    if not manifest_path.is_file():
        raise ConfigError(
            "checkpoint",
            str(checkpoint),
            f"a checkpoint with its manifest {manifest_path.name}",
            "the manifest (SHA-256) is missing; pass a checkpoint written by `oms train`",
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        want = str(manifest["sha256"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError("checkpoint manifest", str(manifest_path), "JSON with a sha256 field", str(e)) from None
    got = file_sha256(checkpoint)
    if got != want:
        raise ConfigError(
            "checkpoint",
            str(checkpoint),
            f"a file whose SHA-256 matches its manifest ({want[:12]}...)",
            f"it is corrupted (SHA-256 {got[:12]}...); serve an earlier checkpoint (RUN/checkpoints/step_*.safetensors)"
            " or train again",
        )
    return checkpoint, manifest


def saved_preprocessing(run_dir: Path) -> Preprocessor | None:
    """The run's fitted preprocessing (``RUN/preprocess.json``, written for runs on user data), or None."""
    path = run_dir / "preprocess.json"
    return Preprocessor.load(path) if path.is_file() else None


def run_signature(run_dir: Path, config: dict[str, Any]) -> RunSignature:
    """The run's signature: its saved preprocessing's, else its built-in dataset's (looked up once)."""
    saved = run_dir / "preprocess.json"
    if saved.is_file():
        try:
            d = json.loads(saved.read_text())
            names = d.get("class_names")
            outputs = len(names) if d["task"] == "classification" else 1
            return RunSignature(d["task"], tuple(int(s) for s in d["input_shape"]), outputs, names and tuple(names))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError("preprocessing", str(saved), "a preprocess.json written by `oms train`", str(e)) from None
    from openmindspore.data import load_dataset

    dataset = config.get("dataset")
    if not isinstance(dataset, str):
        raise ConfigError(
            "dataset",
            dataset,
            "a built-in dataset name, or a run with its preprocess.json",
            "this run's data description is missing; train it again with this version",
        )
    data = load_dataset(dataset)
    task: Task = "classification" if data.task == "classification" else "regression"
    outputs = int(data.num_classes) if task == "classification" else 1
    return RunSignature(task, tuple(int(s) for s in data.input_shape), outputs)


def _build(config: dict[str, Any], signature: RunSignature, code_path: list[str] | None) -> nn.Cell:
    """The run's model, built as training built it (registered name + its arguments, or the user's class with
    its ``init_args`` and what the data provides; the run's seed), from the signature instead of the dataset.
    The config is read as written, not re-validated: serving must not need the training data's files."""
    import mindspore as ms

    from openmindspore.models import create_model

    spec = dict(config.get("model") or {})
    seed = spec.pop("seed", config.get("seed", 0))
    if isinstance(spec.get("class_path"), str):
        from openmindspore.models.registry import create_user_model
        from openmindspore.serve.user_code import use_code_folders
        from openmindspore.train.building import model_arguments

        use_code_folders(spec["class_path"], code_path or [])
        ms.set_seed(seed)
        provided = model_arguments(signature.input_shape, signature.num_outputs)
        return create_user_model(spec["class_path"], spec.get("init_args") or {}, provided)
    name = spec.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(
            "model",
            {k: spec[k] for k in list(spec)[:3]},
            "a run of a registered model (model.name) or of an importable class (model.class_path)",
            "this run's model was given in Python (train(cfg, model=...)): train it with model.class_path to serve it",
        )
    return create_model(name, input_shape=signature.input_shape, num_classes=signature.num_outputs, seed=seed, **spec)


def load_run_model(
    config: dict[str, Any], signature: RunSignature, checkpoint: Path, code_path: list[str] | None = None
) -> nn.Cell:
    """The run's model in inference mode with the checkpoint's weights (strict: names and shapes must match).
    ``code_path``: the folders of a user model's code (:func:`~openmindspore.serve.user_code.code_folders`)."""
    from mindspore import Tensor, ops

    from openmindspore.models._checkpoint_io import format_keys, read_safetensors
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    model = _build(config, signature, code_path)
    weights = read_safetensors(checkpoint, prefix="param/")
    own = {p.name: p for p in model.get_parameters()}
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    shapes = [
        f"{n}: {weights[n].shape} vs {tuple(p.shape)}"
        for n, p in own.items()
        if n in weights and weights[n].shape != tuple(p.shape)
    ]
    if missing or unexpected or shapes:
        raise ConfigError(
            "checkpoint",
            str(checkpoint),
            f"the weights of this run's model ({model_label(config)})",
            f"missing: {format_keys(missing)}; unexpected: {format_keys(unexpected)}; shapes: {format_keys(shapes)}",
        )
    for name, p in own.items():
        ops.assign(p, Tensor(np.ascontiguousarray(weights[name]), dtype=p.dtype))
    model.set_train(False)
    return model
