"""``ModelReplica``: the Ray Serve deployment that runs a model (one predictor per replica process).

A replica gets the source as the driver resolved and prepared it (``ResolvedSource``: checkpoint verified and
pinned, signature known), so it only builds the model and loads its weights.

Every model version is its own Serve application of ``ModelReplica`` with R replicas; Ray Serve
places them, health-checks them, replaces a dead one and shuts them down gracefully. Front ends
(``frontend.FrontEnd``) send it whole batches (``infer``) straight to a replica (``replicas.ReplicaPool``):
over its local channel (``channel.ChannelServer``, a Unix socket; ``channel()`` says where) from the same
node, else as a Ray actor call. ``infer`` holds a lock, so a replica runs one batch at a time even when
several front ends each send it one (MindSpore cells are not called concurrently).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np
import ray
from ray import serve

from openmindspore.serve.channel import ChannelInfo, ChannelServer
from openmindspore.serve.registry import ResolvedSource

__all__ = ["HEALTH_CHECK", "ModelReplica", "ModelReplicaActor"]

log = logging.getLogger("openmindspore.serve")


class ModelReplicaActor:
    """Loads one predictor; ``infer`` runs one batch (``{name: (n, ...)}`` -> ``{name: (n, ...)}``)."""

    def __init__(self, source: str | ResolvedSource, warmup: bool = True) -> None:
        os.environ.setdefault("GLOG_v", "3")
        from openmindspore.serve.registry import load_predictor

        t0 = time.perf_counter()
        self.predictor = load_predictor(source)
        if warmup:
            self.predictor.warmup()
        self._lock = threading.Lock()
        self._channel = ChannelServer(self.infer, ray.get_runtime_context().get_node_id())
        log.info("replica pid=%d loaded %s in %.2f s", os.getpid(), source, time.perf_counter() - t0)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.predictor.predict(inputs)

    def metadata(self) -> dict[str, Any]:
        return self.predictor.metadata()

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose channel thread stopped is replaced."""
        if not self._channel.alive:
            raise RuntimeError("the replica's channel thread stopped")

    def channel(self) -> ChannelInfo:
        """Where front ends on this node send ``infer`` calls without a Ray call (see ``channel.py``)."""
        return self._channel.info

    def __del__(self) -> None:
        """Graceful shutdown: close the channel (front ends see it closed and go to other replicas)."""
        channel = getattr(self, "_channel", None)
        if channel is not None:
            channel.close()

    def pid(self) -> int:
        return os.getpid()


#: how Ray Serve health-checks model replicas and front ends: every 2 s, dead after 30 s without an answer
HEALTH_CHECK: dict[str, Any] = {"health_check_period_s": 2, "health_check_timeout_s": 30}

#: the Ray Serve deployment of ``ModelReplicaActor`` (its replicas' actor names say ``ModelReplica``)
ModelReplica = serve.deployment(
    name="ModelReplica", max_ongoing_requests=1, graceful_shutdown_timeout_s=20, **HEALTH_CHECK
)(ModelReplicaActor)
