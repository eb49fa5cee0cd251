"""The configuration of an active-learning run (``oms active``): one validated pydantic model.

:func:`active_config` validates the fields (every problem at once, did-you-mean for misspelled names);
:func:`check_against` then checks them against the dataset (a classification pool large enough for
the initial labels, the batch and the budget) and the learner (BALD needs posterior samples).

``model`` is a scikit-learn learner (``logreg``, ``svm``, ``random_forest``, ``knn``), a MindSpore
network (``cnn``: the default CNN, ``mlp``) or a path: a layer-spec file (JSON/YAML list of layers) or
an ``oms search`` directory (its best trial's spec). The ``dropout``, ``epochs``, ``min_steps``,
``train_batch`` and ``lr`` fields are the MindSpore learners' (see :mod:`.neural`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from openmindspore.errors import ConfigError
from openmindspore.validation import did_you_mean, validate

__all__ = [
    "ActiveConfig",
    "active_config",
    "check_against",
    "is_neural",
    "STRATEGY_NAMES",
    "MODEL_NAMES",
    "SKLEARN_MODELS",
    "NEURAL_MODELS",
    "NEURAL_OPTIONS",
]

StrategyName = Literal[
    "random",
    "least-confidence",
    "margin",
    "entropy",
    "bald",
    "coreset",
    "badge",
    "margin-kmeans",
    "margin-kcenter",
]
STRATEGY_NAMES: tuple[str, ...] = StrategyName.__args__  # type: ignore[attr-defined]
SKLEARN_MODELS: tuple[str, ...] = ("logreg", "svm", "random_forest", "knn")
NEURAL_MODELS: tuple[str, ...] = ("cnn", "mlp")
MODEL_NAMES: tuple[str, ...] = SKLEARN_MODELS + NEURAL_MODELS
#: options only a MindSpore learner reads (a scikit-learn run resumes whatever they say)
NEURAL_OPTIONS: tuple[str, ...] = ("dropout", "epochs", "min_steps", "train_batch", "lr")


def is_neural(model: str) -> bool:
    """Whether ``model`` (a validated ``ActiveConfig.model``) is trained with MindSpore."""
    return model not in SKLEARN_MODELS


class ActiveConfig(BaseModel):
    """One active-learning run: ``seeds`` independent repetitions (seeds ``seed .. seed+seeds-1``) of a
    loop that starts from ``initial`` labels, asks for ``batch`` more per round and ends at ``budget``
    labels or when the ``stop`` rule fires."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    model: str = Field(
        "logreg", description="logreg | svm | random_forest | knn | cnn | mlp | a layer-spec file | a search directory"
    )
    strategy: StrategyName = "margin"
    init: Literal["random", "kcenter", "typical"] = Field("random", description="how the first labels are picked")
    batch: int = Field(10, gt=0, description="labels asked for per round")
    budget: int = Field(200, gt=0, description="total labels, initial ones included")
    initial: int = Field(20, gt=0, description="labels before the first model")
    seeds: int = Field(1, ge=1, description="independent repetitions")
    seed: int = Field(0, ge=0, description="first seed")
    stop: Literal["none", "auto", "stabilizing", "max-uncertainty"] = "none"
    target_accuracy: float = Field(0.95, gt=0, lt=1, description="selective accuracy the abstention certifies")
    delta: float = Field(0.1, gt=0, lt=1, description="the certificate fails with probability at most delta")
    audit: float = Field(
        0.0, ge=0, lt=1, description="share of each batch drawn uniformly from the whole pool to certify abstention"
    )
    certify: Literal["ltt", "sgr"] = Field("ltt", description="Learn-then-Test or selection with guaranteed risk")
    oracle: Literal["simulated", "files"] = "simulated"
    semi_supervised: bool = Field(False, description="fit on label-spreading pseudo-labels of the whole pool too")
    spread_alpha: float = Field(
        0.2, gt=0, lt=1, description="--semi-supervised: label spreading's alpha (higher: neighbours outweigh a label)"
    )
    ensemble: int = Field(1, ge=1, description="bootstrap ensemble size (posterior samples for BALD)")
    mc_samples: int = Field(20, ge=2, description="posterior samples per pool point for BALD")
    folds: int = Field(
        5, ge=0, description="cross-fitting folds for temperature scaling and abstention (0: none, nothing certified)"
    )
    stop_set: int = Field(1000, ge=10, description="size of the fixed stop set (stabilizing predictions)")
    kappa: float = Field(0.99, gt=0, le=1, description="stabilizing predictions: mean Cohen's kappa to stop")
    kappa_window: int = Field(3, ge=1, description="stabilizing predictions: rounds averaged")
    auto_window: int = Field(5, ge=1, description="auto: rounds back whose models must all agree with the current")
    max_uncertainty: float = Field(0.25, gt=0, lt=1, description="max-uncertainty rule: stop below this")
    dropout: float = Field(0.5, ge=0, lt=1, description="cnn/mlp: dropout before the classifier head (MC dropout)")
    epochs: int = Field(30, ge=1, description="MindSpore learners: epochs over the labelled set per fit")
    min_steps: int = Field(
        300, ge=1, description="MindSpore learners: at least this many optimizer steps per fit (small labelled sets)"
    )
    train_batch: int = Field(32, ge=1, description="MindSpore learners: training batch size")
    lr: float = Field(1e-3, gt=0, description="MindSpore learners: Adam learning rate")

    @field_validator("folds")
    @classmethod
    def _folds(cls, v: int) -> int:
        if v == 1:
            raise ValueError("0 (no cross-fitting) or at least 2")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v in MODEL_NAMES:
            return v
        if Path(v).exists():
            return str(Path(v).resolve())
        hint = did_you_mean(v, MODEL_NAMES)
        raise ValueError(
            f"one of {', '.join(MODEL_NAMES)}, a layer-spec file or a search directory" + (f"; {hint}" if hint else "")
        )


def active_config(data: dict[str, Any]) -> ActiveConfig:
    """Validate a run's options (every problem at once, see :func:`openmindspore.validation.validate`)."""
    return validate(ActiveConfig, data, where="oms active")


def check_against(cfg: ActiveConfig, task: str, pool_size: int, has_samples: bool) -> None:
    """Refuse what the dataset or the learner cannot do, before anything is written."""
    if cfg.budget < cfg.initial:
        raise ConfigError(
            "--budget", cfg.budget, f"at least --initial={cfg.initial}", "raise --budget or lower --initial"
        )
    if task != "classification":
        raise ConfigError(
            "--dataset",
            cfg.dataset,
            "a classification dataset (active learning asks for class labels)",
            f"it is {task}",
        )
    for name, value in (("--initial", cfg.initial), ("--batch", cfg.batch), ("--budget", cfg.budget)):
        if value > pool_size:
            raise ConfigError(name, value, f"at most the pool size {pool_size}", f"choose {name} <= {pool_size}")
    if cfg.strategy == "bald" and not has_samples:
        fix = (
            "add dropout (--dropout 0.5 for cnn/mlp, a dropout layer in a spec) or --ensemble 5 for a 5-seed ensemble"
            if is_neural(cfg.model)
            else "use --model random_forest, or --ensemble 5 for a bootstrap ensemble"
        )
        raise ConfigError(
            "--strategy",
            "bald",
            f"a learner with posterior samples (model {cfg.model!r} has no dropout and ensemble=1)",
            fix,
        )
