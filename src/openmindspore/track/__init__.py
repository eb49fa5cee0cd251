"""Observable runs: experiment trackers (jsonl, TensorBoard, MLflow), provenance and plots.

Sits beside ``train`` (``train`` and ``elastic`` use it; it imports neither): :class:`Trackers` opens the
backends a config names and feeds them from a background thread; :func:`provenance` says what produced a
run; :mod:`~openmindspore.track.plots` draws the learning curve and the recovery timeline. See
``docs/observability.md``.
"""

from openmindspore.track.base import LOGGER_NAMES, Logger, LoggerName, TrackerUnavailable, flatten
from openmindspore.track.hub import Trackers
from openmindspore.track.jsonl import read_jsonl
from openmindspore.track.provenance import config_sha256, provenance

__all__ = [
    "LOGGER_NAMES",
    "Logger",
    "LoggerName",
    "TrackerUnavailable",
    "Trackers",
    "config_sha256",
    "flatten",
    "provenance",
    "read_jsonl",
]
