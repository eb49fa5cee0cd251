"""Searches and ablations as tracked studies: a parent MLflow run with one nested run per trial, and a
progress bar with ETA.

Owns the study's progress bar (rich, on stderr) and, with ``mlflow`` among the loggers, the parent run and
the trial runs it nests under it (``mlflow.parentRunId``). A trial's params are its record flattened (the
spec as JSON, strategy, seed, parent, ``log_propensity`` and each decision's propensity ``p.<i>.<state>``,
or an ablation's factor levels and repeat); its metrics are the validation and test metrics (``val.*``,
``test.*``), ``score`` and ``duration_s``. The store is a file store in the study's output folder unless
``tracking_uri`` names another; it is opened (and a server probed) at start-up like a training run's.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from openmindspore.errors import ConfigError
from openmindspore.track.base import LOGGER_NAMES, TrackerUnavailable, flatten

__all__ = ["StudyLog", "trial_params"]

log = logging.getLogger(__name__)


def trial_params(record: dict[str, Any]) -> dict[str, Any]:
    """A trial record (``trials.jsonl`` row or an ablation run) as flat MLflow params."""
    params: dict[str, Any] = {}
    for key in (
        "strategy",
        "seed",
        "parent",
        "log_propensity",
        "repeat",
        "status",
        "error",
        "promoted_from",
        "rung",
        "budget",
    ):
        if record.get(key) is not None:
            params[key] = record[key]
    if "spec" in record:
        params["spec"] = json.dumps(record["spec"], sort_keys=True)
    for i, step in enumerate(record.get("steps") or []):
        params[f"p.{i}.{step.get('state')}"] = step.get("p")
    if isinstance(record.get("factors"), dict):
        params.update(flatten(record["factors"], "factor."))
    return params


def _metrics(record: dict[str, Any]) -> dict[str, float]:
    out = {k: float(v) for k, v in flatten(record.get("metrics") or {}).items() if isinstance(v, (int, float))}
    for key in ("score", "duration_s"):
        if isinstance(record.get(key), (int, float)):
            out[key] = float(record[key])
    return out


class StudyLog:
    """Progress and tracking of a study of ``total`` trials written to ``out_dir`` (see the module doc)."""

    def __init__(
        self,
        out_dir: str | Path,
        title: str,
        total: int,
        loggers: list[str] | None = None,
        params: dict[str, Any] | None = None,
        tracking_uri: str | None = None,
        on_error: Literal["fail", "warn"] = "fail",
        quiet: bool = False,
    ) -> None:
        self.out, self.title, self.total = Path(out_dir), title, total
        self.tracking_uri = tracking_uri
        self.parent: Any = None  # the study's MlflowLogger
        for name in loggers or []:
            if name not in LOGGER_NAMES:
                raise ConfigError("--logger", name, f"one of {', '.join(LOGGER_NAMES)}")
        if "mlflow" in (loggers or []):
            from openmindspore.track.mlflow_logger import MlflowLogger

            try:
                self.parent = MlflowLogger(self.out, self.out.name or title, tracking_uri)
                self.parent.log_params(flatten(params or {}), {"study": title})
            except TrackerUnavailable as e:
                if on_error == "fail":
                    raise ConfigError("--logger", "mlflow", f"a usable tracker ({e.what})", e.fix) from None
                log.warning("logger mlflow is off for this study: %s", e.what)
        self.console = Console(stderr=True, quiet=quiet)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=quiet,
            transient=True,  # the bar goes when the study ends (or fails: its error stays the one line)
        )
        self._task = self._progress.add_task(title, total=total, best="")
        self._progress.start()
        self.done: float = 0
        self._closed = False

    def trial(self, name: str, record: dict[str, Any], line: str, best: str = "", advance: float = 1) -> None:
        """A finished trial: its line above the bar, the bar advanced (by ``advance`` units: a longer
        trial can weigh more, so the ETA holds), its nested run when tracking."""
        self.done += advance
        self._progress.console.print(line, highlight=False)
        self._progress.update(self._task, completed=self.done, best=best)
        if self.parent is None:
            return
        from openmindspore.track.mlflow_logger import MlflowLogger

        try:
            child = MlflowLogger(self.out, name, self.tracking_uri, parent_run_id=self.parent.run_id)
            child.log_params(trial_params(record), {})
            child.log_metrics(0, _metrics(record), time.time())
            child.close("completed" if record.get("status", "ok") == "ok" else "failed")
        except Exception as e:  # noqa: BLE001 - tracking must not stop the study
            log.warning("trial %s not logged to MLflow: %s", name, e)

    def __enter__(self) -> StudyLog:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:  # the study raised: its MLflow run ends failed
            self.close("failed")

    def close(self, status: str = "completed") -> dict[str, Any] | None:
        """Stop the bar and end the parent run (once); returns where it is recorded (None: not tracked)."""
        if not self._closed:
            self._closed = True
            self._progress.stop()
            if self.parent is not None:
                self.parent.close(status)
        return None if self.parent is None else self.parent.describe()
