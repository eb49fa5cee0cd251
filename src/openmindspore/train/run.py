"""Single-process training runs: ``train`` a config into a run directory, ``resume`` one, ``evaluate``.

``max_steps`` is the absolute step at which to stop (the learning-rate schedule still follows the
config's planned total), so ``max_steps=10`` then ``resume(max_steps=20)`` equals 20 steps straight.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig, config_from_dict
from openmindspore.train.progress import step_progress
from openmindspore.train.state import TrainState
from openmindspore.train.trainer import Trainer

__all__ = ["train", "resume", "evaluate_run", "build_summary"]

log = logging.getLogger(__name__)


def build_summary(
    trainer: Trainer,
    status: str,
    final_loss: float,
    step_times: list[float],
    world_size: int,
    recoveries: list | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields every run's ``summary.json`` has (later layers add more)."""
    times = np.asarray(step_times, dtype=np.float64)
    summary = {
        "status": status,
        "steps": trainer.step,
        "total_steps": trainer.total_steps,
        "final_loss": final_loss,
        "eval": trainer.evaluate("test"),
        "val": trainer.evaluate("val"),
        "params_sha256": trainer.params_sha256(),
        "samples_seen": trainer.samples_seen,
        "epoch": trainer.sampler.epoch,
        "step_time_s": {
            "median": float(np.median(times)) if len(times) else None,
            "mean": float(times.mean()) if len(times) else None,
            "p90": float(np.percentile(times, 90)) if len(times) else None,
        },
        "world_size": world_size,
        "recoveries": list(recoveries or []),
        "dataset": trainer.cfg.dataset,
        "model": trainer.cfg.model.get("name"),
    }
    summary.update(extra)
    return summary


def _loop(trainer: Trainer, run: RunDir | None, stop_at: int, quiet: bool, prior_loss: float) -> dict[str, Any]:
    cfg = trainer.cfg
    step_times: list[float] = []
    loss = prior_loss
    window_t, window_n = time.perf_counter(), 0
    with step_progress(stop_at, trainer.step, title=f"train {cfg.dataset}", disable=quiet) as bar:
        while trainer.step < stop_at:
            t0 = time.perf_counter()
            loss = trainer.train_step()
            step_times.append(time.perf_counter() - t0)
            window_n += 1
            if trainer.step % cfg.log_every == 0 or trainer.step == stop_at:
                now = time.perf_counter()
                sps = window_n * cfg.batch_size / max(now - window_t, 1e-9)
                window_t, window_n = now, 0
                bar.update(trainer.step, loss, sps)
                if run is not None:
                    run.append_metrics(
                        {
                            "step": trainer.step,
                            "loss": loss,
                            "lr": trainer.lr_at(trainer.step - 1),
                            "samples_per_s": sps,
                            "epoch": trainer.sampler.epoch,
                            "time": time.time(),
                        }
                    )
            if run is not None and trainer.step % cfg.checkpoint_every == 0:
                run.save(trainer.state({"final_loss": loss}))
    status = "completed" if trainer.step >= trainer.total_steps else "stopped"
    summary = build_summary(trainer, status, loss, step_times, world_size=1)
    if run is not None:
        if run.latest_name() != f"step_{trainer.step:08d}":
            run.save(trainer.state({"final_loss": loss}))
        run.write_summary(summary)
    return summary


def check_max_steps(max_steps: int | None, start: int) -> None:
    if max_steps is not None and (max_steps < 1 or max_steps <= start):
        raise ConfigError(
            "--max-steps",
            max_steps,
            f"an absolute step > {start} (the run is at step {start})",
            "it is the step to stop at, not a count of additional steps",
        )


def train(
    cfg: TrainConfig, out_dir: str | Path | None = None, max_steps: int | None = None, quiet: bool = True
) -> dict[str, Any]:
    """Train from scratch; writes the run directory when ``out_dir`` is given. Returns the summary."""
    check_max_steps(max_steps, 0)
    run = None if out_dir is None else RunDir.create(out_dir, cfg.model_dump(mode="json"))
    trainer = Trainer(cfg)
    stop_at = min(trainer.total_steps, max_steps or trainer.total_steps)
    return _loop(trainer, run, stop_at, quiet, float("nan"))


def load_run(run_dir: str | Path) -> tuple[RunDir, Trainer, TrainState]:
    """A trainer restored from a run directory's latest checkpoint (also returned)."""
    run = RunDir(run_dir).require_run()
    trainer = Trainer(config_from_dict(run.read_config()))
    state = run.load_latest()
    trainer.load_state(state)
    return run, trainer, state


def resume(run_dir: str | Path, max_steps: int | None = None, quiet: bool = True) -> dict[str, Any]:
    """Continue a run from its latest checkpoint up to ``max_steps`` (default: the planned total)."""
    run, trainer, state = load_run(run_dir)
    check_max_steps(max_steps, trainer.step)
    stop_at = min(trainer.total_steps, max_steps or trainer.total_steps)
    if trainer.step >= stop_at:
        summary = run.read_summary()
        log.info("run %s is already at step %d", run.path, trainer.step)
        return summary
    return _loop(trainer, run, stop_at, quiet, float(state.extra.get("final_loss", float("nan"))))


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a run's latest checkpoint on a split of its dataset."""
    _, trainer, _ = load_run(run_dir)
    return {"split": split, "step": trainer.step, "dataset": trainer.cfg.dataset, **trainer.evaluate(split)}
