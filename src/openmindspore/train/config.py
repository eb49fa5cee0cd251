"""Training configuration: a validated pydantic model, loadable from YAML.

Example (``examples/mnist_cnn.yaml``)::

    dataset: mnist5k
    model: {name: cnn}            # default CNN; or give `layers: [...]`
    optimizer: {name: adam, lr: 0.001}
    batch_size: 64
    epochs: 3                      # or `steps: 500`
    seed: 0

The user's own model and data::

    dataset: {format: csv, path: flowers.csv, label: species}     # see openmindspore.data.spec
    model: {class_path: nets.TinyNet, init_args: {hidden: 16}}    # any importable mindspore.nn.Cell
    train_subset: 60              # optional: a stratified subset of the training split (or a list of indices)

Augmentation (``docs/augment.md``): a list of ops run in order on each training batch, keyed per sample;
key-feature ops read saliency maps the trainer refreshes every ``saliency.every`` epochs::

    augment: [{name: shift, max: 2}, {name: keep_cutout, size: 8}]
    saliency: {method: gradient, every: 2}

A dataset spec's relative paths are resolved against the config file's folder (:func:`load_config`) or
the ``base_dir`` given to :func:`config_from_dict` (default: the current directory); the validated config
holds absolute paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openmindspore.data.augment.ops import (
    KEY_FEATURE_OPS,
    OP_MODELS,
    AugmentOp,
    ShiftOp,
    check_op_names,
    check_order,
)
from openmindspore.data.spec import parse_dataset
from openmindspore.errors import ConfigError
from openmindspore.track.base import LoggerName
from openmindspore.validation import ConfigErrors, did_you_mean, validate

__all__ = [
    "OptimizerConfig",
    "SaliencyConfig",
    "CheckpointConfig",
    "EarlyStoppingConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "check_model_config",
    "read_yaml",
    "check_legacy_detection_config",
]


class OptimizerConfig(BaseModel):
    """The optimizer (``train.optim``: PyTorch's update formulas), its learning-rate schedule and gradient
    clipping."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    clip_grad_norm: float | None = Field(
        None,
        gt=0,
        description="clip the global gradient (all parameters, summed over workers) to this L2 norm before "
        "the update, as torch.nn.utils.clip_grad_norm_; null: no clipping",
    )
    eps: float = Field(1e-8, gt=0, lt=1, description="Adam/AdamW denominator epsilon")
    bias_correction: bool = Field(
        True,
        description="Adam/AdamW bias correction of the moment estimates (PyTorch); false: the update of "
        "MindSpore's nn.AdamWeightDecay (larger early steps)",
    )


class SaliencyConfig(BaseModel):
    """How the saliency maps of key-feature ops are made (``openmindspore.train.saliency``)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["gradient", "gradcam"] = Field(
        "gradient", description="|d loss / d x| (any model), or Grad-CAM at the last conv layer (the spec CNN)"
    )
    every: int = Field(2, ge=1, le=1000, description="refresh every training row's map (inference mode) every K epochs")
    source: Literal["refresh", "backward"] = Field(
        "refresh",
        description="refresh: a pass over the training rows every `every` epochs (exact for any world size); "
        "backward: reuse the training step's input gradient (single process)",
    )
    chunk: int = Field(256, ge=1, le=8192, description="rows per saliency pass")


def _default_logger() -> list[LoggerName]:
    return ["jsonl"]


class CheckpointConfig(BaseModel):
    """Best checkpoints kept by a validation metric (``eval_every`` evaluates it), in ``<run>/best``."""

    model_config = ConfigDict(extra="forbid")

    monitor: str | None = Field(
        None, description="validation metric deciding the best checkpoints, e.g. val.accuracy or val.loss"
    )
    mode: Literal["max", "min"] = Field("max", description="max: higher is better (accuracy); min: loss")
    keep: int = Field(3, ge=1, le=100, description="best checkpoints kept")

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("val.") or len(v) <= 4):
            raise ValueError(f"checkpoint.monitor={v!r}: name a validation metric, e.g. val.accuracy or val.loss")
        return v


class EarlyStoppingConfig(BaseModel):
    """Stop when ``checkpoint.monitor`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    model_config = ConfigDict(extra="forbid")

    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")


class TrainConfig(BaseModel):
    """One training job. ``steps`` wins over ``epochs`` when both are given."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | dict[str, Any] = Field(
        "mnist5k", description="a registered dataset name, or {format: npz|csv|imagefolder|mindrecord, path, ...}"
    )
    model: dict[str, Any] = Field(
        default_factory=lambda: {"name": "cnn"},
        description="{name: cnn|mlp|..., ...} or {class_path: module.Cell, init_args: {...}}",
    )
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.model_validate({}))
    batch_size: int = Field(64, gt=0, description="global batch size (constant whatever the world size)")
    epochs: int | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    log_every: int = Field(10, gt=0)
    checkpoint_every: int = Field(100, gt=0, description="disk checkpoint every K steps")
    eval_batch_size: int = Field(500, gt=0)
    augment_shift: int = Field(
        0, ge=0, le=8, description="random translation of training images, pixels (shorthand for a shift op)"
    )
    augment: list[AugmentOp] = Field(
        default_factory=list, description="augmentation ops run in order on each training batch (docs/augment.md)"
    )
    saliency: SaliencyConfig = Field(
        default_factory=lambda: SaliencyConfig.model_validate({}), description="saliency maps for key-feature ops"
    )
    compile: bool = Field(
        True,
        description="compile the training step into a MindSpore graph when the model "
        "supports it (CNN, MLP, a user cell with graph_safe = True); false runs it op by op (PyNative)",
    )
    train_subset: int | list[int] | None = Field(
        None,
        description="train on part of the training split: a size (stratified, drawn with seed) or a list of "
        "train-split indices; samples keep their original ids as dropout/augmentation keys",
    )

    logger: list[LoggerName] = Field(
        default_factory=_default_logger,
        description="experiment trackers: jsonl (always on), tensorboard, mlflow; several at once "
        "(docs/observability.md)",
    )
    logger_errors: Literal["fail", "warn"] = Field(
        "fail", description="a tracker not installed or unreachable: fail at start-up (exit 2), or warn and go on"
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: a file store in <run>/mlruns)")
    eval_every: int | None = Field(None, gt=0, description="evaluate the validation split every K steps")
    checkpoint: CheckpointConfig = Field(
        default_factory=lambda: CheckpointConfig.model_validate({}),
        description="{monitor: val.accuracy, mode: max, keep: 3}: best checkpoints by a validation metric",
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="{patience, min_delta}: stop when checkpoint.monitor stops improving"
    )

    @field_validator("logger", mode="before")
    @classmethod
    def _logger(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, v: Any) -> Any:
        return parse_dataset(v) if isinstance(v, (str, dict)) else v

    @field_validator("train_subset")
    @classmethod
    def _subset(cls, v: int | list[int] | None) -> int | list[int] | None:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"train_subset={v}: a size must be >= 1")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        check_model_config(self.model)
        if self.epochs is None and self.steps is None:
            self.epochs = 1
        if self.augment_shift and any(op.name == "shift" for op in self.augment):
            raise ValueError("augment_shift and a shift op in augment: give the shift once (augment_shift: 0)")
        check_order([op.name for op in self.augment_ops()])
        if self.checkpoint.monitor is not None and self.eval_every is None:
            raise ValueError("checkpoint.monitor needs eval_every: K (how often to evaluate the validation split)")
        if self.early_stopping is not None and self.checkpoint.monitor is None:
            raise ValueError("early_stopping needs checkpoint.monitor (the metric that must keep improving)")
        return self

    def augment_ops(self) -> list[AugmentOp]:
        """The ops run on each training batch: ``augment_shift``'s shift first (when set), then ``augment``."""
        shorthand: list[AugmentOp] = [ShiftOp(name="shift", max=self.augment_shift)] if self.augment_shift else []
        return shorthand + list(self.augment)

    def needs_saliency(self) -> bool:
        return any(op.name in KEY_FEATURE_OPS for op in self.augment)

    def total_steps(self, num_train: int) -> int:
        """Planned number of optimizer steps (fixes the LR schedule, whatever ``--max-steps`` says)."""
        if self.steps is not None:
            return self.steps
        return (self.epochs or 1) * -(-num_train // self.batch_size)


_MODEL_KEYS = {"class_path": ("class_path", "init_args"), "python_object": ("python_object",)}


def check_model_config(model: dict[str, Any]) -> None:
    """``model`` has exactly one of ``name`` (registered), ``class_path`` (+ ``init_args``) or
    ``python_object`` (a run whose model was given in Python: it must be given again to resume)."""
    forms = [k for k in ("name", "class_path", "python_object") if k in model]
    if len(forms) != 1:
        raise ValueError(
            "model needs exactly one of name (a registered model, e.g. {name: cnn}) or class_path "
            f"(your nn.Cell, e.g. {{class_path: nets.TinyNet, init_args: {{hidden: 16}}}}); got {sorted(model)}"
        )
    form = forms[0]
    if not isinstance(model[form], str) or not model[form]:
        raise ValueError(f"model.{form} must be a string, got {model[form]!r}")
    if model.get("weight_grad", True) is not True:
        raise ValueError(
            f"model.weight_grad={model['weight_grad']!r} would train a model without parameter gradients "
            "(only the saliency maps' twin is built that way); remove weight_grad"
        )
    if form in _MODEL_KEYS:
        extra = sorted(set(model) - set(_MODEL_KEYS[form]))
        if extra:
            raise ValueError(
                f"model.{extra[0]} is not a field of a {form} model; valid: {', '.join(_MODEL_KEYS[form])}"
            )
        if not isinstance(model.get("init_args", {}), dict):
            raise ValueError(f"model.init_args must be a mapping of constructor arguments, got {model['init_args']!r}")


def config_from_dict(data: dict[str, Any], base_dir: str | Path | None = None) -> TrainConfig:
    """Validate a training config; every problem is reported at once (:func:`openmindspore.validation.validate`).
    A dataset spec's relative paths are resolved against ``base_dir`` (default: the current directory)."""
    if not isinstance(data, dict):
        raise ConfigError("config", data, "a YAML mapping of fields (dataset, model, optimizer, ...)")
    problems: list[ConfigError] = []
    data = dict(data)
    try:  # the dataset first: its problems get field names of their own (dataset.label, ...)
        data["dataset"] = parse_dataset(data.get("dataset", "mnist5k"), base_dir)
    except ConfigErrors as e:
        problems += e.problems
    except ConfigError as e:
        problems.append(e)
    if problems:
        data["dataset"] = "mnist5k"  # a placeholder, to report the other fields' problems too
    if "augment" in data:  # unknown op names first, with the valid ones and a did-you-mean
        named = check_op_names(data["augment"])
        problems += named
        if named:
            data["augment"] = []
    try:
        cfg = validate(TrainConfig, data)
    except ConfigErrors as e:
        problems += [_augment_field(p) for p in e.problems]
    if problems:
        raise ConfigErrors("config", problems)
    return cfg


def _augment_field(problem: ConfigError) -> ConfigError:
    """pydantic's ``augment.1.keep_cutout.size`` (index, then the op's tag) as ``augment[1].size``; an
    unknown parameter gets the op's own parameters as the fix."""
    parts = problem.field.split(".")
    if len(parts) < 3 or parts[0] != "augment" or not parts[1].isdigit():
        return problem
    fix = problem.fix
    op = OP_MODELS.get(parts[2])
    if op is not None and len(parts) == 4 and problem.expected == "a known field name":
        params = [f for f in op.model_fields if f != "name"]
        fix = did_you_mean(parts[3], params) or f"{parts[2]} takes {', '.join(params) or 'no parameters'}"
    return ConfigError(
        f"augment[{parts[1]}]" + "".join(f".{p}" for p in parts[3:]), problem.value, problem.expected, fix
    )


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config", str(path), "an existing YAML file", "check the path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("config", str(path), f"valid YAML (parse error{where}: {getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "a YAML mapping of fields (dataset, model, optimizer, ...)")
    return data


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config; errors name the field, value and fix."""
    return config_from_dict(read_yaml(path), base_dir=Path(path).resolve().parent)


def check_legacy_detection_config(raw: dict[str, Any]) -> None:
    """The YOLOS fine-tuning loop's config (``task: detection`` with ``data:``/``train:``) is gone: say how to
    write it for the trainer, in one line."""
    if raw.get("task") == "detection" or ("data" in raw and "train" in raw):
        raise ConfigError(
            "config",
            "task: detection (data:/train: sections)",
            "the trainer's format: dataset: {format: synthetic_detection or coco, ...}, model:, optimizer:, "
            "batch_size:, steps:",
            "the old detection loop is gone: data -> dataset (kind: synthetic -> format: synthetic_detection; "
            "train.hflip -> dataset.hflip), train.steps -> steps, train.lr/warmup_steps/weight_decay -> "
            "optimizer {name: adamw, schedule: cosine, ...}, train.pos_init -> model.pos_init, init_weights -> "
            "model.init_weights; see examples/yolos_synthetic.yaml",
        )
