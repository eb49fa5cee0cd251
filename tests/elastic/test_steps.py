"""The driver's failure classifier (:class:`openmindspore.elastic.steps.StepRunner`) on a real Ray engine,
with small real actors that answer ``step`` and ``ping`` as a worker would: complete, die (a real process
exit), report a failed collective, or go silent. No driver, no training: only the classification."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from openmindspore.elastic.messages import CommFailure, Heartbeat, StepResult
from openmindspore.elastic.stats import StepStats
from openmindspore.elastic.steps import GroupFailure, StepRunner
from openmindspore.engine import ActorRef, get_engine

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HANG_TIMEOUT = 1.0  # s: the first step's deadline (no step times yet); heartbeats get max(2 s, deadline / 2)


def _actor_class() -> type:
    """Defined in a function, so the engine ships the class by value (test modules are not importable
    in its worker processes)."""

    class Toy:
        """``ok``: completes; ``die``: the process exits in the step; ``comm``: its collective failed,
        blaming rank 1; ``silent``: the step and heartbeats block for a minute; ``slow``: the step takes
        ``HANG_TIMEOUT * 1.5`` s but heartbeats answer."""

        def __init__(self, rank: int, behaviour: str) -> None:
            self.rank, self.behaviour = rank, behaviour

        def ready(self) -> int:
            import os

            return os.getpid()

        def step(self, step: int) -> Any:
            import os

            if self.behaviour == "die":
                os._exit(1)
            if self.behaviour == "comm":
                return CommFailure("peer 1 lost", "peer_lost", [1], self.rank, step, time.time())
            if self.behaviour in ("silent", "slow"):
                time.sleep(60 if self.behaviour == "silent" else 1.5 * HANG_TIMEOUT)
            times = dict.fromkeys(("compute_s", "comm_s", "update_s", "stash_s", "worker_s"), 0.0)
            samples = np.arange(2 * self.rank, 2 * self.rank + 2)
            return StepResult(step + 1, 0.5, 0, samples, self.rank, False, **times, compiled=False, time=time.time())

        def ping(self) -> Heartbeat:
            import os

            if self.behaviour == "silent":
                time.sleep(60)
            return Heartbeat(os.getpid(), 0)

        def abort(self, group: str | None = None) -> bool:
            return False

    return Toy


@pytest.fixture(scope="module")
def engine():
    eng = get_engine("ray")
    eng.start(None, num_cpus=4)
    try:
        yield eng
    finally:
        eng.shutdown()


def _group(engine, *behaviours: str) -> list[ActorRef]:
    cls = _actor_class()
    group = [engine.spawn(cls, r, b, name=f"toy-{r}", concurrency=4) for r, b in enumerate(behaviours)]
    for a in group:
        engine.get(engine.call(a, "ready"), timeout=120)
    return group


def _run(engine, *behaviours: str) -> tuple[list[StepResult] | GroupFailure, StepRunner]:
    group = _group(engine, *behaviours)
    runner = StepRunner(engine, HANG_TIMEOUT, StepStats())
    try:
        return runner.run(4, group), runner
    except GroupFailure as failure:
        return failure, runner
    finally:
        for a in group:
            engine.kill(a)


def test_a_completed_step_returns_the_results_in_rank_order(engine):
    out, runner = _run(engine, "ok", "slow")  # slow, but it answers heartbeats: not a hang
    assert isinstance(out, list) and [r.rank for r in out] == [0, 1] and [r.step for r in out] == [5, 5]
    assert runner.inflight == {}


def test_a_process_that_dies_is_a_crash_of_its_rank(engine):
    out, _ = _run(engine, "ok", "die")
    assert isinstance(out, GroupFailure) and out.kind == "crash" and out.ranks == [1] and out.step == 5, out


def test_a_failed_collective_blames_the_peer_that_died(engine):
    out, _ = _run(engine, "comm", "die")
    assert isinstance(out, GroupFailure) and out.kind == "crash" and out.ranks == [1], out


def test_a_failed_collective_with_a_silent_peer_is_a_hang_of_that_peer(engine):
    t0 = time.time()
    out, _ = _run(engine, "comm", "silent")
    assert isinstance(out, GroupFailure) and out.kind == "hang" and out.ranks == [1], out
    assert out.detail == "peer 1 lost" and out.t_detect >= t0


def test_a_step_past_its_deadline_with_a_silent_rank_is_a_hang(engine):
    out, runner = _run(engine, "ok", "silent")
    assert isinstance(out, GroupFailure) and out.kind == "hang" and out.ranks == [1], out
    assert "deadline" in out.detail
    assert set(runner.inflight) == {0, 1}  # the silent rank's step is still out: settle() waits for it


def test_precompiled_shard_sizes_cover_partial_batches_only_when_an_epoch_ends():
    """A worker compiles the shard shapes it may meet: full batches in each group size it may shrink to, and an
    epoch's last, partial batch only when the run reaches an epoch's end (1257 rows, batch 32: at step 40)."""
    from openmindspore.elastic.worker import shard_sizes

    short = shard_sizes(32, 1257, 12, {2, 1})
    assert sorted(set(short)) == [16, 32]
    whole = shard_sizes(32, 1257, 40, {2, 1})  # 40 x 32 >= 1257: the 40th step is the partial batch of 9
    assert sorted(set(whole)) == [4, 5, 9, 16, 32]
    assert shard_sizes(32, 1280, 400, {2}) == [16, 16]  # no partial batch at all
