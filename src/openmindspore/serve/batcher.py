"""Dynamic batching with a latency bound and a bounded queue (asyncio, plain numpy).

``DynamicBatcher`` keeps one FIFO of requests per model version. ``concurrency`` dispatch workers
stand for the replicas' free slots: as soon as a worker is free it forms a batch from the head of the
queue, waiting **at most** ``max_delay_ms`` counted from the arrival of the oldest queued request (so
a request that already waited while every replica was busy leaves at once). A batch counts
*samples*, not requests: whole requests are packed in arrival order while the total stays
``<= max_batch`` (a single request larger than ``max_batch`` travels alone). Requests with different
sample counts batch together; the outputs are split back along the first axis.

When traffic is sparse — the recent mean gap between arrivals (EWMA) is longer than ``max_delay_ms``
— a free worker does not wait at all: a wait would almost never catch a second request and would
only add ``max_delay_ms`` (plus timer lateness on a busy machine) to every request, e.g. a single
closed-loop client. Under load, requests that arrive while every replica is busy batch anyway.

The queue is bounded by ``max_queue`` samples: ``submit`` raises ``QueueFullError`` (HTTP 429 with
``Retry-After``) instead of waiting without bound.

A batch of several requests that fails with an error ``isolate(error)`` says was caused by one request's
input (e.g. an undecodable image) is run again request by request, so only the request at fault fails.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DynamicBatcher", "QueueFullError", "BatcherClosedError"]

log = logging.getLogger(__name__)

RunBatch = Callable[[dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


class QueueFullError(Exception):
    """The bounded queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, queued: int, max_queue: int, n: int, retry_after: int) -> None:
        super().__init__(
            f"queue full: {queued} samples queued + {n} requested > max_queue={max_queue}; retry after {retry_after} s"
        )
        self.retry_after = retry_after


class BatcherClosedError(Exception):
    """The batcher is draining or closed and accepts no new requests."""


@dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    n: int
    future: asyncio.Future
    t_enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Forms sample-counted batches and runs them through ``run_batch`` with ``concurrency`` in flight.

    ``on_batch(samples, requests)`` and ``on_queue(samples)`` are optional metric hooks.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch: int = 32,
        max_delay_ms: float = 2.0,
        max_queue: int = 1024,
        concurrency: int = 1,
        on_batch: Callable[[int, int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        isolate: Callable[[BaseException], bool] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or concurrency < 1 or max_delay_ms < 0:
            raise ValueError(
                f"max_batch={max_batch}, max_queue={max_queue}, concurrency={concurrency} must be >= 1 "
                f"and max_delay_ms={max_delay_ms} >= 0"
            )
        self.run_batch = run_batch
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_ms / 1000.0, max_queue
        self._on_batch, self._on_queue, self._isolate = on_batch, on_queue, isolate
        self._queue: deque[_Pending] = deque()
        self._queued = 0
        self._inflight = 0
        self._closed = False
        self._cond: asyncio.Condition | None = None
        self._form_lock: asyncio.Lock | None = None
        self._workers: list[asyncio.Task] = []
        self._concurrency = concurrency
        self._recent_batch_s = 0.01  # EWMA of batch latency, for Retry-After
        self._gap_s = math.inf  # EWMA of the gap between arrivals (inf until two have arrived)
        self._last_arrival: float | None = None
        self.skipped_waits = 0  # batches sent without waiting because traffic was sparse

    # ------------------------------------------------------------------ public
    @property
    def queued_samples(self) -> int:
        return self._queued

    @property
    def inflight_batches(self) -> int:
        return self._inflight

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def resize(self, concurrency: int) -> None:
        """Change the number of batches allowed in flight (e.g. when the replica count changes)."""
        self._concurrency = max(1, int(concurrency))
        if self._cond is not None:
            self._ensure_workers()

    async def submit(self, inputs: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Queue ``n`` samples and wait for their outputs (each ``(n, ...)``)."""
        if self._closed:
            raise BatcherClosedError("this model version is draining and accepts no new requests")
        self._start()
        if self._queue and self._queued + n > self.max_queue:
            waves = (self._queued + n) / max(1, self.max_batch * self._concurrency)
            raise QueueFullError(self._queued, self.max_queue, n, max(1, math.ceil(waves * self._recent_batch_s)))
        fut = asyncio.get_running_loop().create_future()
        now = time.perf_counter()
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            self._gap_s = gap if math.isinf(self._gap_s) else 0.8 * self._gap_s + 0.2 * gap
        self._last_arrival = now
        self._queue.append(_Pending(inputs, n, fut, now))
        self._queued += n
        self._notify_queue()
        async with self._cond:  # type: ignore[union-attr]
            self._cond.notify_all()  # type: ignore[union-attr]
        return await fut

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Stop accepting requests and wait until queued and in-flight work is done. True if it finished."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while (self._queue or self._inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        done = not self._queue and not self._inflight
        for w in self._workers:
            w.cancel()
        self._workers.clear()
        return done

    # ---------------------------------------------------------------- internal
    def _start(self) -> None:
        if self._cond is None:
            self._cond = asyncio.Condition()
            self._form_lock = asyncio.Lock()
        self._ensure_workers()

    def _ensure_workers(self) -> None:
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < self._concurrency:
            self._workers.append(asyncio.get_running_loop().create_task(self._worker(len(self._workers))))

    def _notify_queue(self) -> None:
        if self._on_queue is not None:
            self._on_queue(self._queued)

    async def _next_batch(self) -> list[_Pending]:
        """Wait for work, then up to ``max_delay`` after the oldest arrival for the batch to fill."""
        assert self._cond is not None
        async with self._cond:
            while not self._queue:
                await self._cond.wait()
            deadline = self._queue[0].t_enqueued + self.max_delay_s
            if self._queued < self.max_batch and self.max_delay_s > 0 and self._gap_s > self.max_delay_s:
                deadline = 0.0  # sparse traffic: waiting would not fill the batch
                self.skipped_waits += 1
            while self._queued < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._cond.wait(), left)
                except TimeoutError:
                    break
                if not self._queue:  # another consumer emptied it (cannot happen under the form lock)
                    return []
            batch: list[_Pending] = []
            total = 0
            while self._queue and (not batch or total + self._queue[0].n <= self.max_batch):
                p = self._queue.popleft()
                self._queued -= p.n
                if p.future.done():  # caller went away
                    continue
                batch.append(p)
                total += p.n
            self._notify_queue()
            return batch

    async def _worker(self, idx: int) -> None:
        assert self._form_lock is not None
        while True:
            async with self._form_lock:
                batch = await self._next_batch()
            if not batch:
                continue
            self._inflight += 1
            try:
                await self._run(batch)
            finally:
                self._inflight -= 1

    async def _run(self, batch: list[_Pending]) -> None:
        names = list(batch[0].inputs)
        if len(batch) == 1:
            merged = batch[0].inputs
        else:
            merged = {k: np.concatenate([p.inputs[k] for p in batch], axis=0) for k in names}
        total = sum(p.n for p in batch)
        if self._on_batch is not None:
            self._on_batch(total, len(batch))
        t0 = time.perf_counter()
        try:
            out = await self.run_batch(merged)
            bad = {k: v.shape for k, v in out.items() if np.ndim(v) == 0 or v.shape[0] != total}
            if bad:
                raise RuntimeError(f"model returned outputs whose first dimension is not the batch size {total}: {bad}")
        except asyncio.CancelledError:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(BatcherClosedError("batch cancelled while draining"))
            raise
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error
            if len(batch) > 1 and self._isolate is not None and self._isolate(e):
                for p in batch:  # one request's input was at fault: find it, serve the others
                    await self._run([p])
                return
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        self._recent_batch_s = 0.8 * self._recent_batch_s + 0.2 * (time.perf_counter() - t0)
        start = 0
        for p in batch:
            if not p.future.done():
                p.future.set_result({k: v[start : start + p.n] for k, v in out.items()})
            start += p.n
