"""A trained ``mlp`` run directory seen as a fitted scikit-learn-style model: owns loading the run's
latest checkpoint and its predictions (class probabilities or regression outputs) on feature rows.

The run is measured as it is (``prefit``): it cannot be re-fitted on other feature sets, so it can be
ranked but not used for selection or construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["MLPRunModel"]


class MLPRunModel:
    """``predict`` / ``predict_proba`` of a trained MLP run; ``dataset`` and ``task`` come from the run."""

    prefit = True

    def __init__(self, trainer: Any, run_dir: str) -> None:
        self._trainer = trainer
        self.run_dir = run_dir
        self.dataset: str = trainer.cfg.dataset
        self.task: str = trainer.task
        self.n_features_in_ = int(np.prod(trainer.data.input_shape))
        self.classes_ = np.arange(trainer.data.num_classes) if self.task == "classification" else None

    @classmethod
    def load(cls, run_dir: str | Path) -> MLPRunModel:
        """Restore the run's latest checkpoint; a run that is not a tabular ``mlp`` is refused."""
        from openmindspore.train.checkpoint import RunDir

        run = RunDir(run_dir).require_run()
        cfg = run.read_config()
        name = (cfg.get("model") or {}).get("name")
        if name != "mlp":
            raise ConfigError(
                "--model",
                str(run_dir),
                f"an mlp run directory (this run trains {name!r})",
                "train a model: {name: mlp}",
            )
        if run.latest_name() is None:
            raise ConfigError(
                "--model",
                str(run_dir),
                "a fitted model (a run with at least one checkpoint)",
                "this run has no checkpoint yet; train it first",
            )
        from openmindspore.train.run import load_run

        _, trainer, _ = load_run(run_dir)
        if len(trainer.data.input_shape) != 1:
            raise ConfigError(
                "--model",
                str(run_dir),
                f"a run on tabular data (its dataset {trainer.cfg.dataset!r} holds images {trainer.data.input_shape})",
                "image data is not supported; use a tabular dataset",
            )
        return cls(trainer, str(run_dir))

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPRunModel:
        raise ConfigError("model", self.run_dir, "a re-fittable model", "a run directory can be ranked, not re-fitted")

    def _out(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != self.n_features_in_:
            raise ConfigError(
                "X", f"{X.shape[1]} columns", f"the {self.n_features_in_} features the run was trained on"
            )
        return np.asarray(self._trainer.predict(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba")
        z = self._out(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._out(X)
        return out.argmax(axis=1) if self.task == "classification" else out.reshape(-1)
