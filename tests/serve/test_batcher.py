"""The dynamic batcher on its own (asyncio, numpy): sample counting, latency bound, bounded queue."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from openmindspore.serve.batcher import BatcherClosedError, DynamicBatcher, QueueFullError


class Recorder:
    """A model that records each batch's sample count; ``gate`` holds batches until released."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = gate

    async def __call__(self, batch):
        self.sizes.append(len(batch["x"]))
        if self.gate is not None:
            await self.gate.wait()
        return {"y": batch["x"] * 2, "n": np.full(len(batch["x"]), len(batch["x"]))}


def run(coro):
    return asyncio.run(coro)


def test_batches_count_samples_and_mix_request_sizes():
    async def main():
        gate = asyncio.Event()
        rec = Recorder(gate)
        b = DynamicBatcher(rec, max_batch=8, max_delay_ms=1000, max_queue=100, concurrency=1)
        first = asyncio.create_task(b.submit({"x": np.zeros((8, 2))}, 8))  # full: leaves at once, holds the slot
        await asyncio.sleep(0.05)
        sizes = [3, 1, 4, 2, 5]
        xs = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i for i, n in enumerate(sizes)]
        tasks = [asyncio.create_task(b.submit({"x": x}, len(x))) for x in xs]
        await asyncio.sleep(0.05)
        gate.set()
        outs = await asyncio.gather(first, *tasks)
        return rec.sizes, xs, outs[1:]

    batch_sizes, xs, outs = run(main())
    # 8 alone; then 3+1+4 = 8 fills a batch (counting samples, not requests); then 2+5
    assert batch_sizes == [8, 8, 7]
    for x, o in zip(xs, outs):
        np.testing.assert_array_equal(o["y"], x * 2)  # each request gets its own rows back
        assert o["y"].shape[0] == len(x)


def test_full_batch_leaves_without_waiting_for_the_delay_bound():
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch=4, max_delay_ms=60_000, concurrency=1)
        # max_delay is a minute: only a full batch can leave before the test's own timeout
        return await asyncio.wait_for(asyncio.gather(*(b.submit({"x": np.ones((2, 1))}, 2) for _ in range(2))), 30), rec

    outs, rec = run(main())
    assert rec.sizes == [4] and all(o["y"].shape == (2, 1) for o in outs)


def test_partial_batch_leaves_at_the_delay_bound():
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch=64, max_delay_ms=20, concurrency=1)
        outs = await asyncio.wait_for(
            asyncio.gather(b.submit({"x": np.ones((3, 1))}, 3), b.submit({"x": np.ones((2, 1))}, 2)), 30
        )
        return outs, rec, b

    outs, rec, b = run(main())
    # dense arrivals: the worker waited (at most 20 ms) and sent one partial batch of 5 samples
    assert rec.sizes == [5] and outs[0]["n"].tolist() == [5, 5, 5] and b.skipped_waits == 0


def test_sparse_traffic_does_not_wait_for_the_delay_bound():
    async def main():
        rec = Recorder()
        b = DynamicBatcher(rec, max_batch=64, max_delay_ms=20, concurrency=1)
        for _ in range(4):  # one closed-loop client: arrivals 100 ms apart, much more than max_delay
            await asyncio.wait_for(b.submit({"x": np.ones((1, 1))}, 1), 30)
            await asyncio.sleep(0.1)
        return rec, b

    rec, b = run(main())
    assert rec.sizes == [1, 1, 1, 1] and b.skipped_waits == 4


def test_bounded_queue_raises_queue_full_with_retry_after():
    async def main():
        gate = asyncio.Event()
        b = DynamicBatcher(Recorder(gate), max_batch=1, max_delay_ms=0, max_queue=2, concurrency=1)
        running = [asyncio.create_task(b.submit({"x": np.ones((1, 1))}, 1))]
        await asyncio.sleep(0.02)  # in flight, queue empty
        running += [asyncio.create_task(b.submit({"x": np.ones((1, 1))}, 1)) for _ in range(2)]
        await asyncio.sleep(0.02)  # queue holds 2 samples = max_queue
        assert b.queued_samples == 2
        with pytest.raises(QueueFullError) as e:
            await b.submit({"x": np.ones((1, 1))}, 1)
        gate.set()
        await asyncio.gather(*running)
        return e.value

    err = run(main())
    assert err.retry_after >= 1 and "max_queue=2" in str(err)


def test_model_error_reaches_every_request_of_the_batch_and_drain_closes():
    async def main():
        async def broken(batch):
            raise RuntimeError("boom")

        b = DynamicBatcher(broken, max_batch=8, max_delay_ms=20, concurrency=1)
        res = await asyncio.gather(*(b.submit({"x": np.ones((1, 1))}, 1) for _ in range(3)), return_exceptions=True)
        assert await b.drain(1.0)
        with pytest.raises(BatcherClosedError):
            await b.submit({"x": np.ones((1, 1))}, 1)
        return res

    res = run(main())
    assert len(res) == 3 and all(isinstance(r, RuntimeError) and "boom" in str(r) for r in res)


def test_concurrency_keeps_that_many_batches_in_flight():
    async def main():
        gate = asyncio.Event()
        rec = Recorder(gate)
        b = DynamicBatcher(rec, max_batch=1, max_delay_ms=0, concurrency=3)
        tasks = [asyncio.create_task(b.submit({"x": np.ones((1, 1))}, 1)) for _ in range(5)]
        await asyncio.sleep(0.05)
        inflight, queued = b.inflight_batches, b.queued_samples
        gate.set()
        await asyncio.gather(*tasks)
        return inflight, queued

    assert run(main()) == (3, 2)


def test_a_batch_failed_by_one_requests_input_is_split_so_only_that_request_fails():
    class BadRow(ValueError):
        pass

    sizes: list[int] = []

    async def model(batch):
        sizes.append(len(batch["x"]))
        if np.any(batch["x"] < 0):
            raise BadRow("a negative sample")
        return {"y": batch["x"] + 1}

    async def main():
        gate = asyncio.Event()

        async def held(batch):  # the first batch holds the only slot while the others queue
            await gate.wait()
            return await model(batch)

        b = DynamicBatcher(held, max_batch=8, max_delay_ms=1000, concurrency=1, isolate=lambda e: isinstance(e, BadRow))
        first = asyncio.create_task(b.submit({"x": np.ones((8, 1))}, 8))
        await asyncio.sleep(0.05)
        xs = [np.full((1, 1), 2.0), np.full((2, 1), -1.0), np.full((1, 1), 3.0)]
        tasks = [asyncio.create_task(b.submit({"x": x}, len(x))) for x in xs]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *tasks, return_exceptions=True)

    first, good1, bad, good2 = run(main())
    assert sizes == [8, 4, 1, 2, 1]  # the shared batch of 4 samples failed, then each request ran alone
    assert good1["y"].tolist() == [[3.0]] and good2["y"].tolist() == [[4.0]]
    assert isinstance(bad, BadRow) and first["y"].shape == (8, 1)
