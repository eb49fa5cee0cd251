"""The tracker seam: what every experiment-tracking backend implements, and the names the config uses.

Owns no state. A backend (:mod:`~openmindspore.track.tensorboard_logger`, :mod:`~openmindspore.track.mlflow_logger`,
:mod:`~openmindspore.track.jsonl`) is opened once per run (its constructor checks that it is installed
and reachable, so a problem shows at start-up, raising :class:`TrackerUnavailable`) and then receives
the run's parameters, per-step metrics, events (recoveries, rescales, hangs, preemptions) and, at the
end, its artifacts. Metric keys are the ones of ``metrics.jsonl`` (``loss``, ``lr``, ``samples_per_s``)
and ``val.<metric>`` for periodic validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["LoggerName", "LOGGER_NAMES", "Logger", "TrackerUnavailable", "flatten", "numeric_fields"]

LoggerName = Literal["jsonl", "tensorboard", "mlflow"]
LOGGER_NAMES: tuple[str, ...] = ("jsonl", "tensorboard", "mlflow")


class TrackerUnavailable(Exception):
    """A tracker cannot be used: ``what`` says why in one line, ``fix`` what to do."""

    def __init__(self, name: str, what: str, fix: str) -> None:
        self.name, self.what, self.fix = name, what, fix
        super().__init__(f"{name}: {what}; {fix}")


class Logger(Protocol):
    """One tracking backend of one run."""

    name: str

    def log_params(self, params: dict[str, Any], provenance: dict[str, Any]) -> None:
        """The run's flattened config and its provenance (once, at start)."""

    def log_metrics(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        """Scalar metrics at a (1-based) global step."""

    def log_event(self, step: int, kind: str, fields: dict[str, Any], wall_time: float) -> None:
        """A run event (``recovery``, ``rescale``, ``early_stop``, ...) at ``step`` with its fields."""

    def log_artifacts(self, paths: list[Path]) -> None:
        """Files of the run directory to attach (config, summary, plots, checkpoint manifest)."""

    def close(self, status: str) -> None:
        """Flush and end the run (``status``: completed / stopped / failed)."""

    def describe(self) -> dict[str, Any]:
        """Where the run is recorded (for ``summary.json``)."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}``; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def numeric_fields(fields: dict[str, Any]) -> dict[str, float]:
    """The numeric (not boolean) entries of an event's flattened fields: its timings and sizes."""
    return {
        k: float(v)
        for k, v in flatten(fields).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }
