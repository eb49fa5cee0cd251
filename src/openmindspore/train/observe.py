"""What a run shows while it trains: trackers, periodic validation, best checkpoints, events, provenance.

Owns a run's :class:`~openmindspore.track.Trackers`, its :class:`~openmindspore.train.best.BestCheckpoints`,
the ``train.log`` handler and how many of the run's recoveries and rescales have been reported. The
single-process loop (:mod:`~openmindspore.train.run`) and the elastic driver both call it: ``metrics`` at
each logged step (``metrics.jsonl`` as before, and every tracker), ``evaluated`` after a validation every
``eval_every`` steps, ``sync_events`` with the driver's recovery records, and ``finish`` with the
summary (which gains ``provenance``, ``trackers``, ``best_checkpoint``; plots are drawn then).

:meth:`RunObserver.open` is called before the run directory is created: a tracker that is missing or
unreachable fails there (one line, exit 2) and nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openmindspore.track import Trackers, flatten, provenance, read_jsonl
from openmindspore.train.best import BestCheckpoints
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig
from openmindspore.train.state import TrainState

__all__ = ["RunObserver"]

log = logging.getLogger(__name__)

_PACKAGE_LOGGER = "openmindspore"
_NOT_METRICS = ("step", "time", "epoch", "world_size")


class RunObserver:
    """The observability of one run (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, run_path: Path, trackers: Trackers) -> None:
        self.cfg, self.path, self.trackers = cfg, Path(run_path), trackers
        self.best = BestCheckpoints(self.path, cfg.checkpoint, cfg.early_stopping)
        self.provenance = provenance(cfg.model_dump(mode="json"))
        self._events_sent = {"recovery": 0, "rescale": 0}
        self._recoveries: list[dict[str, Any]] = []
        self._rescales: list[dict[str, Any]] = []
        self._handler: logging.Handler | None = None
        self._old_level = logging.NOTSET
        self._finished = False

    @classmethod
    def open(cls, cfg: TrainConfig, run_path: str | Path, resumed: bool = False) -> RunObserver:
        """Open the config's trackers for the run at ``run_path`` (before anything of the run is written)."""
        path = Path(run_path)
        trackers = Trackers.open(cfg.logger, path, cfg.logger_errors, cfg.tracking_uri, path.name, resume=resumed)
        return cls(cfg, path, trackers)

    def start(self) -> None:
        """The run directory exists: log the config and provenance, attach ``train.log``."""
        self.trackers.save()  # a resumed run continues the same tracker runs
        self.trackers.log_params(flatten(self.cfg.model_dump(mode="json")), flatten(self.provenance))
        pkg = logging.getLogger(_PACKAGE_LOGGER)
        level = min(pkg.getEffectiveLevel(), logging.INFO)
        self._handler = logging.FileHandler(self.path / "train.log")
        self._handler.setLevel(level)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._old_level = pkg.level
        pkg.setLevel(level)
        pkg.addHandler(self._handler)
        log.info(
            "run %s: config sha256 %s, command %s",
            self.path,
            self.provenance["config_sha256"][:16],
            self.provenance["command"],
        )

    # ------------------------------------------------------------ during the run
    def metrics(self, run: RunDir, row: dict[str, Any]) -> None:
        """A logged step's row: appended to ``metrics.jsonl`` and sent to the trackers."""
        run.append_metrics(row)
        values = {k: float(v) for k, v in row.items() if k not in _NOT_METRICS and isinstance(v, (int, float))}
        self.trackers.log_metrics(int(row["step"]), values, float(row.get("time", time.time())))

    def eval_due(self, step: int) -> bool:
        return self.cfg.eval_every is not None and step % self.cfg.eval_every == 0

    def evaluated(self, step: int, val: dict[str, Any], state: Callable[[], TrainState], world_size: int) -> bool:
        """Validation metrics at ``step``; keeps ``state()`` when among the best. Returns True when early
        stopping is due."""
        metrics = {f"val.{k}": float(v) for k, v in val.items() if isinstance(v, (int, float))}
        self.trackers.log_metrics(step, metrics)
        self.best.offer(step, metrics, state, world_size)
        log.info("step %d: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        if self.best.should_stop(step):
            self.event(step, "early_stop", {"monitor": self.cfg.checkpoint.monitor, "best": self.best.describe()})
            log.info(
                "early stopping at step %d: %s has not improved for %d evaluations",
                step,
                self.cfg.checkpoint.monitor,
                self.best.stale,
            )
            return True
        return False

    def event(self, step: int, kind: str, fields: dict[str, Any]) -> None:
        self.trackers.log_event(step, kind, fields)
        log.info("event %s at step %d: %s", kind, step, fields)

    def sync_events(self, recoveries: list[dict[str, Any]], rescales: list[dict[str, Any]]) -> None:
        """Report the recoveries (kind crash / hang / preempt) and rescales recorded since the last call, each
        at its step with its timings."""
        self._recoveries, self._rescales = recoveries, rescales
        for name, records in (("recovery", recoveries), ("rescale", rescales)):
            for rec in records[self._events_sent[name] :]:
                fields = {k: v for k, v in rec.items() if k != "step"}
                self.event(int(rec["step"]), name, fields)
            self._events_sent[name] = len(records)

    # ------------------------------------------------------------ the end
    def finish(self, run: RunDir, summary: dict[str, Any]) -> dict[str, Any]:
        """Complete ``summary`` (provenance, trackers, best checkpoint, early stop), draw the plots, write
        ``summary.json``, send the artifacts and close the trackers."""
        from openmindspore.track import plots

        if self.best.stopped_at is not None:
            summary["early_stopped"] = {"step": self.best.stopped_at, "monitor": self.cfg.checkpoint.monitor}
        summary["best_checkpoint"] = self.best.describe()
        summary["provenance"] = self.provenance
        self.trackers.flush()  # eval.jsonl is complete
        made: list[Path] = []
        try:
            rows, evals = read_jsonl(self.path / "metrics.jsonl"), read_jsonl(self.path / "eval.jsonl")
            curve = plots.learning_curve(rows, evals, self._recoveries, self.path / "learning_curve.png")
            timeline = plots.recovery_timeline(self._recoveries, self._rescales, self.path / "recovery_timeline.png")
            made = [p for p in (curve, timeline) if p is not None]
        except Exception as e:  # noqa: BLE001 - a plot must not fail a finished run
            log.warning("plots not written: %s: %s", type(e).__name__, e)
        summary["plots"] = [p.name for p in made]
        summary["trackers"] = self.trackers.describe()
        run.write_summary(summary)
        latest = run.latest_name()
        artifacts = [run.config_path, run.path / "summary.json", *made, self.path / "events.jsonl"]
        if latest is not None:
            artifacts.append(run.ckpt_dir / f"{latest}.json")
        if self.best.kept:
            artifacts.append(self.best.dir / f"{self.best.kept[0]['name']}.json")
        self.trackers.log_artifacts(artifacts)
        self.close(str(summary.get("status", "completed")))
        return summary

    def close(self, status: str = "failed") -> None:
        """End the trackers' runs and detach ``train.log`` (idempotent; ``failed`` when the run raised)."""
        if self._finished:
            return
        self._finished = True
        self.trackers.close(status)
        if self._handler is not None:
            pkg = logging.getLogger(_PACKAGE_LOGGER)
            pkg.removeHandler(self._handler)
            pkg.setLevel(self._old_level)
            self._handler.close()
