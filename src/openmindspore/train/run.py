"""Single-process training runs: ``train`` a config into a run directory, ``resume`` one, ``evaluate``.

``max_steps`` is the absolute step at which to stop (the learning-rate schedule still follows the
config's planned total), so ``max_steps=10`` then ``resume(max_steps=20)`` equals 20 steps straight.

Everything a run needs (data, model, the model's fit to the task) is built and checked before the run
directory is created: a bad config writes nothing. ``model=`` takes an ``nn.Cell`` or a factory from
Python instead of ``config.model``; such a run records ``model: {python_object: module.Class}`` and needs
the same ``model=`` to be resumed or evaluated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.data import dataset_label
from openmindspore.errors import ConfigError
from openmindspore.train.building import describe_model
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig, config_from_dict
from openmindspore.train.observe import RunObserver
from openmindspore.train.progress import step_progress
from openmindspore.train.state import TrainState
from openmindspore.train.trainer import Trainer
from openmindspore.train.usercode import restore_code_path

__all__ = ["train", "resume", "evaluate_run", "build_summary", "load_run"]

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
        "model": describe_model(trainer.cfg.model),
    }
    summary.update(extra)
    return summary


def _loop(
    trainer: Trainer, run: RunDir | None, stop_at: int, quiet: bool, prior_loss: float, obs: RunObserver | None = None
) -> dict[str, Any]:
    if obs is None:
        return _observed_loop(trainer, run, stop_at, quiet, prior_loss, None)
    try:
        obs.start()
        return _observed_loop(trainer, run, stop_at, quiet, prior_loss, obs)
    finally:
        obs.close("failed")  # no-op after finish()


def _observed_loop(
    trainer: Trainer, run: RunDir | None, stop_at: int, quiet: bool, prior_loss: float, obs: RunObserver | None
) -> dict[str, Any]:
    cfg = trainer.cfg
    early_stop = False
    step_times: list[float] = []
    loss = prior_loss
    window_t, window_n = time.perf_counter(), 0
    with step_progress(stop_at, trainer.step, title=f"train {dataset_label(cfg.dataset)}", disable=quiet) as bar:
        while trainer.step < stop_at and not early_stop:
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
                    row = {
                        "step": trainer.step,
                        "loss": loss,
                        "lr": trainer.lr_at(trainer.step - 1),
                        "samples_per_s": sps,
                        "epoch": trainer.sampler.epoch,
                        "time": time.time(),
                    }
                    if obs is not None:
                        obs.metrics(run, row)
                    else:
                        run.append_metrics(row)
            if obs is not None and obs.eval_due(trainer.step):
                early_stop = obs.evaluated(trainer.step, trainer.evaluate("val"), _state_of(trainer, loss), 1)
            if run is not None and trainer.step % cfg.checkpoint_every == 0:
                run.save(trainer.state({"final_loss": loss}))
    status = "completed" if trainer.step >= trainer.total_steps else "stopped"
    summary = build_summary(trainer, status, loss, step_times, world_size=1)
    if run is not None:
        if run.latest_name() != f"step_{trainer.step:08d}":
            run.save(trainer.state({"final_loss": loss}))
        if obs is not None:
            return obs.finish(run, summary)
        run.write_summary(summary)
    return summary


def _state_of(trainer: Trainer, loss: float) -> Callable[[], TrainState]:
    """The trainer's state, taken only when called (a best checkpoint)."""
    return lambda: trainer.state({"final_loss": loss})


def check_max_steps(max_steps: int | None, start: int) -> None:
    if max_steps is not None and (max_steps < 1 or max_steps <= start):
        raise ConfigError(
            "--max-steps",
            max_steps,
            f"an absolute step > {start} (the run is at step {start})",
            "it is the step to stop at, not a count of additional steps",
        )


def _python_model_record(model: Any) -> dict[str, Any]:
    target = model if not hasattr(model, "construct") else type(model)
    return {"python_object": f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"}


def train(
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    max_steps: int | None = None,
    quiet: bool = True,
    model: Any = None,
) -> dict[str, Any]:
    """Train from scratch; writes the run directory when ``out_dir`` is given. Returns the summary.

    ``model``: an ``nn.Cell`` or a factory (called with the data's ``num_classes``/``input_shape``/... it
    asks for) to train instead of ``cfg.model``."""
    check_max_steps(max_steps, 0)
    if out_dir is not None:
        RunDir.ensure_new(out_dir)
    if model is not None:
        cfg = cfg.model_copy(update={"model": _python_model_record(model)})
    trainer = Trainer(cfg, model=model)
    obs = None if out_dir is None else RunObserver.open(cfg, Path(out_dir))  # a bad tracker: nothing written
    run = None if out_dir is None else RunDir.create(out_dir, cfg.model_dump(mode="json"))
    stop_at = min(trainer.total_steps, max_steps or trainer.total_steps)
    return _loop(trainer, run, stop_at, quiet, float("nan"), obs)


def load_run(
    run_dir: str | Path, model: Any = None, code_dirs: list[str] | None = None
) -> tuple[RunDir, Trainer, TrainState]:
    """A trainer restored from a run directory's latest checkpoint (also returned). The run's model code
    is found through ``code_dirs`` or the folders it recorded (``code.json``)."""
    run = RunDir(run_dir).require_run()
    restore_code_path(run.path, code_dirs)
    trainer = Trainer(config_from_dict(run.read_config()), model=model)
    state = run.load_latest()
    trainer.load_state(state)
    return run, trainer, state


def resume(
    run_dir: str | Path,
    max_steps: int | None = None,
    quiet: bool = True,
    model: Any = None,
    code_dirs: list[str] | None = None,
) -> dict[str, Any]:
    """Continue a run from its latest checkpoint up to ``max_steps`` (default: the planned total)."""
    run, trainer, state = load_run(run_dir, model, code_dirs)
    check_max_steps(max_steps, trainer.step)
    stop_at = min(trainer.total_steps, max_steps or trainer.total_steps)
    if trainer.step >= stop_at:
        summary = run.read_summary()
        log.info("run %s is already at step %d", run.path, trainer.step)
        return summary
    obs = RunObserver.open(trainer.cfg, run.path, resumed=True)
    return _loop(trainer, run, stop_at, quiet, float(state.extra.get("final_loss", float("nan"))), obs)


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data: str | Path | None = None,
    model: Any = None,
    code_dirs: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a run's latest checkpoint on a split of its dataset, or on ``data``: a new labelled file or
    folder of the run's format, put through the run's *saved* preprocessing (``preprocess.json``)."""
    run, trainer, _ = load_run(run_dir, model, code_dirs)
    if data is None:
        label = dataset_label(trainer.cfg.dataset)
        return {"split": split, "step": trainer.step, "dataset": label, **trainer.evaluate(split)}
    from openmindspore.data.files import read_labelled

    pre = run.preprocessor()
    if pre is None or not isinstance(trainer.cfg.dataset, dict):
        raise ConfigError(
            "--data",
            str(data),
            "a run trained on your own files (it has no preprocess.json)",
            "use --split to evaluate a registered dataset's run",
        )
    x, y = read_labelled(pre, data, trainer.cfg.dataset)
    return {
        "split": "data",
        "step": trainer.step,
        "dataset": str(data),
        "samples": int(len(y)),
        **trainer.evaluate(x=x, y=y),
    }
