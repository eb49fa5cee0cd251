"""The engine seam on Ray (embedded cluster): spawn, call, wait, outcomes of success, remote errors and
killed processes, gang reservation and its failure."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from openmindspore.engine import EngineError, get_engine
from openmindspore.errors import ConfigError, OMSError

pytestmark = pytest.mark.distributed


class Echo:
    """A small actor: its methods run in its own process."""

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


@pytest.fixture(scope="module")
def engine():
    eng = get_engine("ray")
    eng.start(None, num_cpus=2)
    eng.start(None, num_cpus=2)  # idempotent
    try:
        yield eng
    finally:
        eng.shutdown()
        eng.shutdown()  # idempotent


def test_spawn_call_get_and_wait(engine):
    a = engine.spawn(Echo, "a", name="echo-a", concurrency=4)
    assert engine.get(engine.call(a, "hello", 7), timeout=60) == "a:7"
    pid = engine.get(engine.call(a, "pid"), timeout=30)
    assert pid != os.getpid()
    slow, fast = engine.call(a, "sleep", 1.5), engine.call(a, "sleep", 0.0)
    ready, pending = engine.wait([slow, fast], timeout=0.5, num=1)
    assert ready == [fast] and pending == [slow]
    assert engine.outcome(slow, timeout=0).status == "pending"
    ready, pending = engine.wait([slow], timeout=30, num=1)
    assert ready == [slow] and not pending
    out = engine.outcome(slow, timeout=0)
    assert out.ok and out.value == 1.5
    big = np.ones(50 * 1024 * 1024 // 8)  # 50 MB through the object store
    assert engine.get(engine.call(a, "total", big), timeout=60) == float(big.size)
    engine.kill(a)


def test_remote_exception_is_an_error_with_its_message(engine):
    a = engine.spawn(Echo, "b", name="echo-b")
    out = engine.outcome(engine.call(a, "fail"), timeout=60)
    assert out.status == "error" and "refused 42" in out.error
    with pytest.raises(EngineError, match="refused 42"):
        engine.get(engine.call(a, "fail"), timeout=60)
    assert engine.get(engine.call(a, "hello", 1), timeout=30) == "b:1"  # the process survived its error
    engine.kill(a)


@pytest.mark.parametrize("how", ["engine.kill", "SIGKILL"])
def test_a_killed_process_is_dead(engine, how):
    a = engine.spawn(Echo, "c", name="echo-c")
    pid = engine.get(engine.call(a, "pid"), timeout=60)
    inflight = engine.call(a, "sleep", 60.0)
    time.sleep(0.2)
    if how == "SIGKILL":
        os.kill(pid, signal.SIGKILL)
    else:
        engine.kill(a)
    out = engine.outcome(inflight, timeout=30)
    assert out.status == "dead", out
    assert engine.outcome(engine.call(a, "hello", 1), timeout=30).status == "dead"
    engine.kill(a)  # killing a dead actor is fine


def test_reserve_places_bundles_and_refuses_what_the_cluster_cannot_hold(engine):
    with pytest.raises(EngineError, match=r"64 CPU slots.*2 CPUs") as err:
        engine.reserve(64)  # more than the whole cluster: refused at once, not after a wait
    assert isinstance(err.value, OMSError)  # the CLI prints it as one line and exits 2
    engine.reserve(2, "PACK")
    nodes = engine.bundle_nodes()
    assert len(nodes) == 2 and all(n is not None and n[1] == 2.0 for n in nodes)
    a = engine.spawn(Echo, "d", name="echo-d", bundle=1)
    assert engine.get(engine.call(a, "hello", 2), timeout=60) == "d:2"
    other = get_engine("ray")  # a second reservation while the first holds every CPU
    with pytest.raises(EngineError, match="could not reserve 1 CPU slot"):
        other.reserve(1, timeout_s=1.0)
    engine.kill(a)


def test_unknown_engine_name_is_a_config_error():
    with pytest.raises(ConfigError, match="--engine"):
        get_engine("spark")
