"""Routes of a front end: which model versions exist, their specs, batchers and replica dispatchers.

``RouteTable.apply(routes)`` installs the routing table (``config.Routes``) pushed by ``Server`` (as
the front end's Ray Serve ``user_config``): a dictionary swap inside one asyncio loop, so a switch fails nothing —
requests already queued on the old version finish there, new ones go to the new one. Removed
versions are returned so the caller can drain them.

Each ``VersionRoute`` owns one ``DynamicBatcher``; a batch runs on a replica through a
``ReplicaPool`` (the replica's local channel, or a replica-actor call) or a ``HandleDispatcher``
(``DeploymentHandle``). A batch whose replica died is sent again (inference is idempotent) with backoff until
``retry_timeout_s``: Ray Serve replaces the dead replica, the pool drops it at once and finds the
replacement on its next refresh, so the client never sees the failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from openmindspore.serve.batcher import DynamicBatcher
from openmindspore.serve.config import Dispatch, Routes, VersionConfig
from openmindspore.serve.metrics import ServeMetrics
from openmindspore.serve.protocol import ProtocolError, TensorSpec
from openmindspore.serve.registry import InputError
from openmindspore.serve.replicas import RETRYABLE_ERRORS, HandleDispatcher, NoReplicaError, ReplicaPool

__all__ = [
    "Dispatcher",
    "MakeDispatcher",
    "VersionRoute",
    "RoutedModel",
    "RouteTable",
    "ReplicaGoneError",
    "input_error",
]

log = logging.getLogger("openmindspore.serve")

#: a batch that failed with one of these is sent again (the replica went away, the model did not raise)
_RETRY: tuple[type[BaseException], ...] = (*RETRYABLE_ERRORS, NoReplicaError)


class ReplicaGoneError(Exception):
    """Every retry of a batch hit a dead or unavailable replica."""


def input_error(e: BaseException) -> InputError | None:
    """The predictor's ``InputError`` behind ``e`` (raised in this process, or in a replica: Ray's task error
    carries it as its ``cause``; the task error itself is an ``InputError`` too, but its message is the remote
    traceback), else None."""
    for err in (getattr(e, "cause", None), e):
        if isinstance(err, InputError):
            return err
    return None


class Dispatcher(Protocol):
    """Runs one batch somewhere (``ReplicaPool``, ``HandleDispatcher``); ``refresh`` returns the usable replicas."""

    async def call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    async def refresh(self) -> int: ...


#: ``VersionConfig`` -> its ``Dispatcher`` (default: by ``dispatch``; tests run predictors in-process)
MakeDispatcher = Callable[[VersionConfig], Dispatcher]


def _default_dispatcher(dispatch: Dispatch) -> MakeDispatcher:
    def make(cfg: VersionConfig) -> Dispatcher:
        if dispatch in ("direct", "actor"):
            return ReplicaPool(cfg.app, cfg.deployment, cfg.inflight_per_replica, channel=dispatch == "direct")
        return HandleDispatcher(cfg.app, cfg.deployment)

    return make


class VersionRoute:
    """A routed model version: specs, batcher, dispatcher, metric children (``cfg`` from ``Server``)."""

    def __init__(
        self,
        model: str,
        version: str,
        cfg: VersionConfig,
        metrics: ServeMetrics,
        retry_timeout_s: float,
        make_dispatcher: MakeDispatcher,
    ) -> None:
        self.model, self.version, self.cfg = model, version, cfg
        self.meta = cfg.metadata
        self.inputs = [TensorSpec.from_metadata(d) for d in self.meta["inputs"]]
        self.outputs = [TensorSpec.from_metadata(d) for d in self.meta["outputs"]]
        self.dispatcher = make_dispatcher(cfg)
        self.retry_timeout_s = retry_timeout_s
        lab = {"model": model, "version": version}
        self.m_retry = metrics.retries.labels(**lab)
        self._batch_size, self._batch_requests = metrics.batch_size.labels(**lab), metrics.batch_requests.labels(**lab)
        b = cfg.batching
        self.batcher = DynamicBatcher(
            self._call,
            max_batch=b.max_batch,
            max_delay_ms=b.max_delay_ms,
            max_queue=b.max_queue,
            concurrency=cfg.concurrency,
            on_batch=self._observe_batch,
            on_queue=metrics.queue_depth.labels(**lab).set,
            isolate=lambda e: input_error(e) is not None,
        )

    def _observe_batch(self, samples: int, requests: int) -> None:
        self._batch_size.observe(samples)
        self._batch_requests.observe(requests)

    def update(self, cfg: VersionConfig) -> None:
        self.cfg = cfg
        self.batcher.resize(cfg.concurrency)

    async def _call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; on replica death retry (with backoff) until ``retry_timeout_s``."""
        deadline = time.monotonic() + self.retry_timeout_s
        delay, attempt = 0.02, 0
        while True:
            try:
                return await self.dispatcher.call(batch)
            except _RETRY as e:
                attempt += 1
                self.m_retry.inc()
                if time.monotonic() + delay > deadline:
                    raise ReplicaGoneError(
                        f"model {self.model!r} version {self.version}: no replica answered within "
                        f"{self.retry_timeout_s:.0f} s after {attempt} attempts ({type(e).__name__})"
                    ) from e
                log.warning(
                    "model=%s version=%s replica failed (%s); retry %d in %.2f s",
                    self.model,
                    self.version,
                    type(e).__name__,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                await self.dispatcher.refresh()


@dataclass
class RoutedModel:
    """A model as a front end routes it: the default version and every loaded ``VersionRoute``."""

    default: str
    versions: dict[str, VersionRoute] = field(default_factory=dict)


class RouteTable:
    """``models[name]``: the ``RoutedModel`` of every routed model."""

    def __init__(
        self,
        metrics: ServeMetrics,
        retry_timeout_s: float = 60.0,
        dispatch: Dispatch = "direct",
        make_dispatcher: MakeDispatcher | None = None,
    ) -> None:
        self.metrics, self.retry_timeout_s = metrics, retry_timeout_s
        self.make_dispatcher = make_dispatcher or _default_dispatcher(dispatch)
        self.models: dict[str, RoutedModel] = {}

    def apply(self, routes: Routes) -> list[VersionRoute]:
        """Install ``routes``; returns the versions that were removed (their batchers must drain)."""
        removed: list[VersionRoute] = []
        new: dict[str, RoutedModel] = {}
        for name, m in routes.routed().models.items():
            old = self.models[name].versions if name in self.models else {}
            versions: dict[str, VersionRoute] = {}
            for v, cfg in m.versions.items():
                if v in old and old[v].cfg.app == cfg.app:
                    old[v].update(cfg)
                    versions[v] = old[v]
                else:
                    versions[v] = VersionRoute(name, v, cfg, self.metrics, self.retry_timeout_s, self.make_dispatcher)
            removed += [ov for v, ov in old.items() if versions.get(v) is not ov]
            new[name] = RoutedModel(str(m.default), versions)
        for name, rm in self.models.items():
            if name not in new:
                removed += list(rm.versions.values())
        self.models = new
        return removed

    def lookup(self, model: str, version: str | None) -> VersionRoute:
        m = self.models.get(model)
        if m is None:
            raise ProtocolError(f"unknown model {model!r}; served models: {sorted(self.models)}", 404)
        v = version if version is not None else m.default
        if v not in m.versions:
            raise ProtocolError(f"model {model!r} has no version {v!r}; loaded versions: {sorted(m.versions)}", 404)
        return m.versions[v]

    async def wait_for_replicas(self, timeout_s: float) -> list[str]:
        """Wait until every routed version knows at least one live replica; returns those that still do not."""
        deadline = time.monotonic() + timeout_s
        waiting = self.all_versions()
        while waiting:
            counts = await asyncio.gather(*(v.dispatcher.refresh() for v in waiting), return_exceptions=True)
            waiting = [v for v, c in zip(waiting, counts) if not (isinstance(c, int) and c > 0)]
            if not waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return [f"{v.model}/{v.version}" for v in waiting]

    def all_versions(self) -> list[VersionRoute]:
        return [v for m in self.models.values() for v in m.versions.values()]

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "default": m.default,
                "versions": sorted(m.versions),
                "queued": {v: ver.batcher.queued_samples for v, ver in m.versions.items()},
                # replicas this front end knows, and those it calls over their local channel (``ReplicaPool``)
                "replicas": {v: getattr(ver.dispatcher, "size", 0) for v, ver in m.versions.items()},
                "channels": {v: getattr(ver.dispatcher, "channels", 0) for v, ver in m.versions.items()},
            }
            for name, m in self.models.items()
        }
