"""MLflow tracker: one MLflow run per training run (nested under a parent for search trials).

Owns the MLflow client and run id. The tracking URI is a local file store in the run directory
(``<run>/mlruns``) unless ``tracking_uri`` names a server (``http://host:5000``) or another store; a
server is probed at start-up (``/health``, 5 s) so an unreachable one fails before training. MLflow's
file store is in maintenance mode upstream and refuses to open unless ``MLFLOW_ALLOW_FILE_STORE`` is set:
this module sets it (when unset) for the local default. Params: the flattened config; tags: provenance
(``oms.*``) and one tag per event (``event.<n>.<kind>``, JSON); metrics: every logged step, and each
event's numeric fields as ``event.<kind>.<field>`` at the event's step; artifacts at the end. Needs
``mlflow-skinny`` (``pip install openmindspore[mlflow]``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from openmindspore.track.base import TrackerUnavailable, numeric_fields

__all__ = ["MlflowLogger", "local_store_uri", "check_reachable"]

_MAX_PARAM = 500  # characters of a param value kept (MLflow's limit is larger; a config's lists can be long)


def local_store_uri(run_dir: Path) -> str:
    return (Path(run_dir) / "mlruns").resolve().as_uri()


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """An ``http(s)`` tracking server must answer ``/health`` within ``timeout_s`` (raises
    :class:`TrackerUnavailable` otherwise); other URIs (file stores, databases) are opened by the client."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
            r.read(64)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise TrackerUnavailable(
            "mlflow",
            f"tracking_uri {uri} is unreachable ({reason})",
            "start the MLflow server, fix tracking_uri, or set logger_errors: warn to train without it",
        ) from None


def _import_mlflow() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise TrackerUnavailable(
            "mlflow",
            f"the mlflow package is not installed ({e})",
            "pip install 'openmindspore[mlflow]' (mlflow-skinny), or remove mlflow from logger",
        ) from None
    return MlflowClient


class MlflowLogger:
    """One MLflow run: ``experiment`` (created when missing), named ``run_name``, optionally nested under
    ``parent_run_id``."""

    name = "mlflow"

    def __init__(
        self,
        run_dir: Path,
        run_name: str,
        tracking_uri: str | None = None,
        experiment: str = "openmindspore",
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
    ) -> None:
        """``resume_run_id``: continue that run (a resumed training run) when the store still has it."""
        self.uri = tracking_uri or local_store_uri(run_dir)
        if self.uri.startswith("file:") or "://" not in self.uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        check_reachable(self.uri)
        client_cls = _import_mlflow()
        from mlflow.entities import Metric, Param, RunTag

        self._Metric, self._Param, self._Tag = Metric, Param, RunTag
        self.resumed = False
        try:
            self.client = client_cls(tracking_uri=self.uri)
            exp = self.client.get_experiment_by_name(experiment)
            self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
            tags = {"mlflow.runName": run_name}
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            self.run_id: str = (
                self._continued(resume_run_id)
                or self.client.create_run(self.experiment_id, tags=tags, run_name=run_name).info.run_id
            )
        except Exception as e:  # noqa: BLE001 - any store error is "cannot use this tracker"
            raise TrackerUnavailable(
                "mlflow",
                f"cannot open tracking_uri {self.uri} ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                "fix tracking_uri, or set logger_errors: warn to train without it",
            ) from None
        self._events = 0

    def _continued(self, run_id: str | None) -> str | None:
        """``run_id`` set running again, if the store has it (else None: a new run)."""
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - gone (another store, deleted): start a new run
            return None
        self.experiment_id = run.info.experiment_id
        self.client.update_run(run_id, status="RUNNING")
        self.resumed = True
        return run_id

    def log_params(self, params: dict[str, Any], provenance: dict[str, Any]) -> None:
        if self.resumed:  # params are immutable in MLflow: a resumed run keeps the first ones
            self.client.log_batch(self.run_id, tags=[self._Tag("oms.resumed_command", str(provenance.get("command")))])
            return
        items = [self._Param(k, str(v)[:_MAX_PARAM]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        tags = [self._Tag(f"oms.{k}", str(v)[:5000]) for k, v in sorted(provenance.items())]
        self.client.log_batch(self.run_id, tags=tags)

    def log_metrics(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        ts = int(wall_time * 1000)
        rows = [self._Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=rows)

    def log_event(self, step: int, kind: str, fields: dict[str, Any], wall_time: float) -> None:
        ts = int(wall_time * 1000)
        tag = self._Tag(f"event.{self._events}.{kind}", json.dumps({"step": step, **fields}, default=str)[:5000])
        self._events += 1
        rows = [self._Metric(f"event.{kind}.{k}", v, ts, int(step)) for k, v in numeric_fields(fields).items()]
        self.client.log_batch(self.run_id, metrics=rows, tags=[tag])

    def log_artifacts(self, paths: list[Path]) -> None:
        for p in paths:
            if Path(p).is_file():
                self.client.log_artifact(self.run_id, str(p))

    def close(self, status: str) -> None:
        state = {"completed": "FINISHED", "stopped": "FINISHED"}.get(status, "FAILED")
        self.client.set_tag(self.run_id, "oms.status", status)
        self.client.set_terminated(self.run_id, state, end_time=int(time.time() * 1000))

    def describe(self) -> dict[str, Any]:
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id}
