"""Best checkpoints by a validation metric, and early stopping on it.

Owns ``<run>/best``: up to ``checkpoint.keep`` states, the best by ``checkpoint.monitor`` (``mode`` max or
min), each written atomically as ``step_XXXXXXXX.safetensors`` with a manifest ``step_XXXXXXXX.json``
(step, monitor, value, SHA-256s), ``BEST`` naming the best one; and the count of evaluations without an
improvement of at least ``early_stopping.min_delta`` (stop after ``patience``). Ties keep the earlier
state. These are separate from the rolling ``checkpoints/`` (which resume uses).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openmindspore.errors import ConfigError, OMSError
from openmindspore.train.checkpoint import atomic_write
from openmindspore.train.config import CheckpointConfig, EarlyStoppingConfig
from openmindspore.train.state import TrainState

__all__ = ["BestCheckpoints", "load_best"]


class BestCheckpoints:
    """The run's best states (see the module docstring)."""

    def __init__(self, run_dir: Path, cfg: CheckpointConfig, early: EarlyStoppingConfig | None = None) -> None:
        self.dir = Path(run_dir) / "best"
        self.cfg, self.early = cfg, early
        self.kept: list[dict[str, Any]] = []  # manifests, best first
        self.best_value: float | None = None  # for early stopping: the best value seen
        self.stale = 0  # evaluations since the last improvement by min_delta
        self.stopped_at: int | None = None

    def _better(self, a: float, b: float, delta: float = 0.0) -> bool:
        return a > b + delta if self.cfg.mode == "max" else a < b - delta

    def offer(self, step: int, metrics: dict[str, float], state: Callable[[], TrainState], world_size: int) -> None:
        """The validation ``metrics`` (``val.<name>`` keys) at ``step``: keep ``state()`` when among the best."""
        monitor = self.cfg.monitor
        if monitor is None:
            return
        if monitor not in metrics:
            raise ConfigError("checkpoint.monitor", monitor, f"one of {', '.join(sorted(metrics))}")
        value = float(metrics[monitor])
        delta = self.early.min_delta if self.early is not None else 0.0
        if self.best_value is None or self._better(value, self.best_value, delta):
            self.best_value, self.stale = value, 0
        else:
            self.stale += 1
        if len(self.kept) >= self.cfg.keep and not self._better(value, self.kept[-1]["value"]):
            return
        self._write(step, value, state(), world_size)

    def _write(self, step: int, value: float, state: TrainState, world_size: int) -> None:
        blob = state.to_bytes()
        name = f"step_{step:08d}"
        atomic_write(self.dir / f"{name}.safetensors", blob)
        manifest = {
            "name": name,
            "step": step,
            "monitor": self.cfg.monitor,
            "mode": self.cfg.mode,
            "value": value,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "params_sha256": state.params_sha256(),
            "world_size": world_size,
            "created": time.time(),
        }
        atomic_write(self.dir / f"{name}.json", json.dumps(manifest, indent=2))
        kept = [m for m in self.kept if m["name"] != name] + [manifest]
        # best first; among equal values the earlier step
        kept.sort(key=lambda m: (-m["value"] if self.cfg.mode == "max" else m["value"], m["step"]))
        for m in kept[self.cfg.keep :]:
            (self.dir / f"{m['name']}.safetensors").unlink(missing_ok=True)
            (self.dir / f"{m['name']}.json").unlink(missing_ok=True)
        self.kept = kept[: self.cfg.keep]
        atomic_write(self.dir / "BEST", self.kept[0]["name"])

    def should_stop(self, step: int) -> bool:
        """Early stopping is due (``patience`` evaluations without improvement)."""
        if self.early is not None and self.stale >= self.early.patience:
            self.stopped_at = step
            return True
        return False

    def describe(self) -> dict[str, Any] | None:
        """The summary's ``best_checkpoint``: the best state's step, value and file (None: none kept)."""
        if not self.kept:
            return None
        best = self.kept[0]
        return {
            "step": best["step"],
            "monitor": best["monitor"],
            "value": best["value"],
            "path": str(self.dir / f"{best['name']}.safetensors"),
            "kept_steps": [m["step"] for m in self.kept],
        }


def load_best(run_dir: str | Path) -> TrainState:
    """The best checkpoint of a run (``<run>/best/BEST``), verified against its manifest's SHA-256."""
    best = Path(run_dir) / "best"
    if not (best / "BEST").is_file():
        raise ConfigError(
            "run directory", str(run_dir), "a run with a best checkpoint", "train with checkpoint.monitor"
        )
    name = (best / "BEST").read_text().strip()
    blob = (best / f"{name}.safetensors").read_bytes()
    if hashlib.sha256(blob).hexdigest() != json.loads((best / f"{name}.json").read_text())["sha256"]:
        raise OMSError(f"best checkpoint {name} in {best} is corrupted (SHA-256 mismatch with its manifest)")
    return TrainState.from_bytes(blob)
