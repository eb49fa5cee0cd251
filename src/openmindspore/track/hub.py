"""The trackers of one run, fed from a background thread so that logging stays off the step's path.

Owns the open backends, their failures and the queue of calls to them. :meth:`Trackers.open` opens every
backend the config names at start-up: one that is not installed or not reachable raises a one-line
:class:`~openmindspore.errors.ConfigError` (``on_error="fail"``, the default) or is left out with a
warning (``"warn"``). Later calls are queued and made by one daemon thread in order, in rounds every
``interval`` (1 s); a backend that raises then is disabled with a warning and training goes on (its error
is in :meth:`Trackers.describe`).
``jsonl`` (``events.jsonl``, ``eval.jsonl``) is always on.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from openmindspore.errors import ConfigError
from openmindspore.track.base import LOGGER_NAMES, Logger, TrackerUnavailable
from openmindspore.track.jsonl import JsonlLogger

__all__ = ["Trackers"]

log = logging.getLogger(__name__)

_STOP = ("__stop__", ())
_SAVED = "trackers.json"


def _make(
    name: str,
    run_dir: Path,
    run_name: str,
    tracking_uri: str | None,
    experiment: str,
    parent: str | None,
    resume: dict[str, Any],
) -> Logger:
    if name == "tensorboard":
        from openmindspore.track.tensorboard_logger import TensorBoardLogger

        return TensorBoardLogger(run_dir / "tensorboard")
    if name == "mlflow":
        from openmindspore.track.mlflow_logger import MlflowLogger, local_store_uri

        earlier = resume.get("mlflow") or {}
        same_store = earlier.get("tracking_uri") == (tracking_uri or local_store_uri(run_dir))
        return MlflowLogger(
            run_dir, run_name, tracking_uri, experiment, parent, earlier.get("run_id") if same_store else None
        )
    return JsonlLogger(run_dir)


class Trackers:
    """Fan-out to a run's backends (see the module docstring)."""

    def __init__(self, loggers: list[Logger], errors: dict[str, str] | None = None, interval: float = 1.0) -> None:
        """``interval``: seconds between the background thread's rounds of calls."""
        self.loggers = list(loggers)
        self.errors: dict[str, str] = dict(errors or {})
        self.interval = interval
        self._wake = threading.Event()
        self._queue: queue.Queue[tuple[str, tuple]] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="oms-trackers", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def open(
        cls,
        names: Sequence[str],
        run_dir: str | Path,
        on_error: Literal["fail", "warn"] = "fail",
        tracking_uri: str | None = None,
        run_name: str | None = None,
        experiment: str = "openmindspore",
        parent_run_id: str | None = None,
        resume: bool = False,
    ) -> Trackers:
        """Open ``jsonl`` and every backend in ``names`` for the run in ``run_dir`` (checked here). ``resume``:
        continue the tracker runs that ``trackers.json`` (:meth:`save`) names, where the backend can."""
        run_dir = Path(run_dir)
        earlier = json.loads((run_dir / _SAVED).read_text()) if resume and (run_dir / _SAVED).is_file() else {}
        loggers: list[Logger] = []
        errors: dict[str, str] = {}
        for name in dict.fromkeys(["jsonl", *names]):
            if name not in LOGGER_NAMES:
                raise ConfigError("logger", name, f"one of {', '.join(LOGGER_NAMES)}")
            try:
                loggers.append(
                    _make(name, run_dir, run_name or run_dir.name, tracking_uri, experiment, parent_run_id, earlier)
                )
            except TrackerUnavailable as e:
                if on_error == "fail":
                    raise ConfigError("logger", name, f"a usable tracker ({e.what})", e.fix) from None
                errors[name] = e.what
                log.warning("logger %s is off for this run: %s (logger_errors: warn, training goes on)", name, e.what)
        return cls(loggers, errors)

    # ------------------------------------------------------------- calls
    def _drain(self) -> None:
        """Every ``interval`` s (or when woken by flush/close) make every queued call: one wake-up per interval
        rather than per logged step, so that the thread rarely takes the GIL from the training loop (on a
        loaded machine a woken thread that is descheduled while holding it stalls the loop)."""
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            while True:
                try:
                    method, args = self._queue.get_nowait()
                except queue.Empty:
                    break
                try:
                    if (method, args) == _STOP:
                        return
                    self._call(method, args)
                finally:
                    self._queue.task_done()

    def _call(self, method: str, args: tuple) -> None:
        for lg in list(self.loggers):
            try:
                getattr(lg, method)(*args)
            except Exception as e:  # noqa: BLE001 - a tracker's failure must not stop training
                self.loggers.remove(lg)
                self.errors[lg.name] = f"{method} failed: {type(e).__name__}: {str(e)[:300]}"
                log.warning("logger %s is off from now on: %s", lg.name, self.errors[lg.name])

    def _put(self, method: str, *args: Any) -> None:
        if not self._closed:
            self._queue.put((method, args))

    def log_params(self, params: dict[str, Any], provenance: dict[str, Any]) -> None:
        self._put("log_params", params, provenance)

    def log_metrics(self, step: int, metrics: dict[str, float], wall_time: float | None = None) -> None:
        self._put("log_metrics", int(step), dict(metrics), time.time() if wall_time is None else wall_time)

    def log_event(self, step: int, kind: str, fields: dict[str, Any], wall_time: float | None = None) -> None:
        self._put("log_event", int(step), kind, dict(fields), time.time() if wall_time is None else wall_time)

    def log_artifacts(self, paths: list[Path]) -> None:
        self._put("log_artifacts", [Path(p) for p in paths])

    def flush(self) -> None:
        """Wait until every queued call has been made."""
        self._wake.set()
        self._queue.join()

    def close(self, status: str) -> None:
        """Make the queued calls, end every backend's run and stop the thread."""
        if self._closed:
            return
        self._put("close", status)
        self._closed = True
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout=300)

    def save(self) -> None:
        """Write where each backend records this run to ``<run>/trackers.json`` (what ``resume`` reads)."""
        jsonl = next((lg for lg in self.loggers if isinstance(lg, JsonlLogger)), None)
        if jsonl is not None:
            (jsonl.dir / _SAVED).write_text(json.dumps(self.describe(), indent=2, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        """Each backend's location, and the error of each that was left out or turned off."""
        out: dict[str, Any] = {lg.name: lg.describe() for lg in self.loggers}
        out.update({name: {"error": err} for name, err in self.errors.items()})
        return out
