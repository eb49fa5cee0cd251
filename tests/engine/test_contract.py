"""One contract for every engine behind the seam (Ray's embedded cluster, openYuanrong's local mode):
start/shutdown, spawn/call/get, wait with ``num`` and sub-second timeouts, outcomes (pending, ok, a remote
error with its message, a killed actor dead), large arrays, many concurrent calls, stateless tasks.
Where a backend cannot do something its ``capabilities`` say so and the test says why it skips."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from openmindspore.engine import EngineError, get_engine
from openmindspore.engine.tasks import parallel_map, shutdown
from openmindspore.errors import ConfigError

pytestmark = pytest.mark.distributed

ENGINES = ["ray", "yuanrong"]


class Echo:
    """A small actor."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def pid(self) -> int:
        return os.getpid()

    def hello(self, x: int) -> str:
        return f"{self.tag}:{x}"

    def fail(self) -> None:
        raise ValueError("the remote side refused 42")

    def sleep(self, s: float) -> float:
        time.sleep(s)
        return s

    def total(self, a: np.ndarray) -> float:
        return float(a.sum())

    def env(self, key: str) -> str | None:
        return os.environ.get(key)


def square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    if request.param == "yuanrong":
        pytest.importorskip("yr", reason="openYuanrong's SDK (the yuanrong extra, part of the test extra)")
    eng = get_engine(request.param)
    eng.start(None, num_cpus=2)
    eng.start(None, num_cpus=2)  # idempotent
    try:
        yield eng
    finally:
        eng.shutdown()
        eng.shutdown()  # idempotent


def test_capabilities_say_what_the_backend_can_do(engine):
    caps = engine.capabilities
    if engine.name == "ray":
        assert caps.process_isolation and caps.placement and caps.kill_process and not caps.cluster
    else:  # local mode: threads of this process
        assert not (caps.process_isolation or caps.placement or caps.kill_process or caps.cluster)
    assert engine.free_cpus() > 0


def test_spawn_call_get_and_wait(engine):
    a = engine.spawn(Echo, "a", name="echo-a", concurrency=4)
    assert engine.get(engine.call(a, "hello", 7), timeout=60) == "a:7"
    pid = engine.get(engine.call(a, "pid"), timeout=30)
    assert (pid != os.getpid()) == engine.capabilities.process_isolation
    slow, fast = engine.call(a, "sleep", 1.5), engine.call(a, "sleep", 0.0)
    ready, pending = engine.wait([slow, fast], timeout=0.5, num=1)  # a sub-second timeout
    assert ready == [fast] and pending == [slow]
    assert engine.outcome(slow, timeout=0).status == "pending"  # returned before the slow call ended
    ready, pending = engine.wait([slow], timeout=30, num=1)
    assert ready == [slow] and not pending
    out = engine.outcome(slow, timeout=0)
    assert out.ok and out.value == 1.5
    ready, pending = engine.wait([slow, fast], timeout=5, num=2)
    assert set(map(id, ready)) == {id(slow), id(fast)} and not pending
    engine.kill(a)


def test_a_50_mb_array_and_100_concurrent_calls(engine):
    a = engine.spawn(Echo, "b", name="echo-b", concurrency=8)
    big = np.ones(50 * 1024 * 1024 // 8)
    assert engine.get(engine.call(a, "total", big), timeout=60) == float(big.size)
    calls = [engine.call(a, "hello", i) for i in range(100)]
    ready, pending = engine.wait(calls, timeout=60, num=100)
    assert len(ready) == 100 and not pending
    assert [engine.get(c, timeout=0) for c in calls] == [f"b:{i}" for i in range(100)]
    engine.kill(a)


def test_spawn_passes_environment_variables(engine):
    a = engine.spawn(Echo, "e", name="echo-e", env={"OMS_CONTRACT_FLAG": "on"})
    value = engine.get(engine.call(a, "env", "OMS_CONTRACT_FLAG"), timeout=60)
    if engine.capabilities.process_isolation:
        assert value == "on"
    else:  # threads share this process's environment; the variables are the instance's, not ours
        assert os.environ.get("OMS_CONTRACT_FLAG") is None
    engine.kill(a)


def test_remote_exception_is_an_error_with_its_message(engine):
    a = engine.spawn(Echo, "c", name="echo-c")
    out = engine.outcome(engine.call(a, "fail"), timeout=60)
    assert out.status == "error" and "refused 42" in out.error
    with pytest.raises(EngineError, match="refused 42"):
        engine.get(engine.call(a, "fail"), timeout=60)
    assert engine.get(engine.call(a, "hello", 1), timeout=30) == "c:1"  # the actor survived its error
    engine.kill(a)


@pytest.mark.parametrize("how", ["engine.kill", "SIGKILL"])
def test_a_killed_actor_is_dead(engine, how):
    if how == "SIGKILL" and not engine.capabilities.kill_process:
        pytest.skip(f"{engine.name}: actors are threads of this process here (capabilities.kill_process is False)")
    a = engine.spawn(Echo, "d", name="echo-d")
    pid = engine.get(engine.call(a, "pid"), timeout=60)
    inflight = engine.call(a, "sleep", 3.0)
    time.sleep(0.2)
    if how == "SIGKILL":
        os.kill(pid, signal.SIGKILL)
    else:
        engine.kill(a)
    out = engine.outcome(inflight, timeout=30)
    assert out.status == "dead", out
    assert engine.outcome(engine.call(a, "hello", 1), timeout=30).status == "dead"
    engine.kill(a)  # killing a dead actor is fine


def test_submit_runs_stateless_tasks(engine):
    futs = [engine.submit(square, i) for i in range(20)]
    assert [engine.get(f, timeout=60) for f in futs] == [i * i for i in range(20)]
    bad = engine.submit(Echo("t").fail)
    out = engine.outcome(bad, timeout=60)
    assert out.status == "error" and "refused 42" in out.error


@pytest.mark.parametrize("name", ENGINES)
def test_parallel_map_keeps_item_order_on_every_engine(name):
    if name == "yuanrong":
        pytest.importorskip("yr")
    try:
        assert parallel_map(square, range(7), workers=2, engine=name) == [i * i for i in range(7)]
        assert parallel_map(square, range(3), workers=1, engine=name) == [0, 1, 4]  # in this process
    finally:
        shutdown()


def test_unknown_engine_name_is_a_config_error():
    with pytest.raises(ConfigError, match="--engine"):
        get_engine("spark")
