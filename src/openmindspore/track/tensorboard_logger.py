"""TensorBoard tracker: event files under ``<run>/tensorboard``, written with TensorBoard's own writer.

Owns one ``EventFileWriter``. Metrics are scalars under their ``metrics.jsonl`` keys (``loss``, ``lr``,
``samples_per_s``, ``val.accuracy``, ...); the config and provenance are text summaries (``config``,
``provenance``) at step 0; an event is a text summary ``event/<kind>`` (its fields as JSON) plus scalars
``event/<kind>/<field>`` for its numeric fields (timings, world sizes) at the event's step. TensorBoard's
``EventAccumulator`` reads them back (``Scalars``, ``Tensors``). Needs the ``tensorboard`` package
(``pip install openmindspore[tensorboard]``), not TensorFlow or PyTorch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from openmindspore.track.base import TrackerUnavailable, numeric_fields

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger:
    """Scalars, texts and events of one run in ``logdir``."""

    name = "tensorboard"

    def __init__(self, logdir: Path) -> None:
        try:
            from tensorboard.compat.proto import types_pb2
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
            from tensorboard.compat.proto.tensor_pb2 import TensorProto
            from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as e:
            raise TrackerUnavailable(
                "tensorboard",
                f"the tensorboard package is not installed ({e})",
                "pip install 'openmindspore[tensorboard]', or remove tensorboard from logger",
            ) from None
        self._Event, self._Summary, self._Meta = Event, Summary, SummaryMetadata
        self._Tensor, self._Shape, self._string = TensorProto, TensorShapeProto, types_pb2.DT_STRING
        self.logdir = Path(logdir)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = EventFileWriter(str(self.logdir), flush_secs=30)
        except OSError as e:
            raise TrackerUnavailable(
                "tensorboard", f"cannot write {self.logdir} ({e})", "check the run directory"
            ) from None

    def _write(self, step: int, values: list[Any], wall_time: float) -> None:
        event = self._Event(wall_time=wall_time, step=int(step), summary=self._Summary(value=values))
        self._writer.add_event(event)

    def _scalar(self, tag: str, value: float) -> Any:
        return self._Summary.Value(tag=tag, simple_value=float(value))

    def _text(self, tag: str, text: str) -> Any:
        meta = self._Meta(plugin_data=self._Meta.PluginData(plugin_name="text"))
        tensor = self._Tensor(dtype=self._string, string_val=[text.encode()], tensor_shape=self._Shape())
        return self._Summary.Value(tag=tag, metadata=meta, tensor=tensor)

    def log_params(self, params: dict[str, Any], provenance: dict[str, Any]) -> None:
        now = time.time()
        config = "\n".join(f"    {k}: {v}" for k, v in sorted(params.items()))
        self._write(0, [self._text("config", config), self._text("provenance", json.dumps(provenance, indent=1))], now)

    def log_metrics(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        self._write(step, [self._scalar(k, v) for k, v in metrics.items()], wall_time)

    def log_event(self, step: int, kind: str, fields: dict[str, Any], wall_time: float) -> None:
        values = [self._text(f"event/{kind}", json.dumps(fields, sort_keys=True, default=str))]
        values += [self._scalar(f"event/{kind}/{k}", v) for k, v in numeric_fields(fields).items()]
        self._write(step, values, wall_time)
        self._writer.flush()  # events are rare and wanted at once

    def log_artifacts(self, paths: list[Path]) -> None:
        return None  # they are in the run directory, beside the event files

    def close(self, status: str) -> None:
        self._write(0, [self._text("status", status)], time.time())
        self._writer.close()

    def describe(self) -> dict[str, Any]:
        return {"logdir": str(self.logdir)}
