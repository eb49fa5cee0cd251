"""The shared-memory collective: bitwise equal to the rank-ordered numpy reference, failure-aware, rebuildable.

Ranks of one group run as threads of this process (the collective only shares memory and sockets, so a
thread per rank exercises the same code as a process per rank), except where processes must die: those
tests start real processes and send real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
import pytest
from comm_testing import assert_survivors_name
from comm_testing import inputs as _inputs
from comm_testing import on_ranks as _on_ranks

from oms_testing import ROOT
from openmindspore.elastic.comm import CommAbortedError, CommError, CommTimeoutError, ShmCollective, reference_allreduce
from openmindspore.errors import ConfigError


def _group() -> str:
    return uuid.uuid4().hex[:12]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "float16"])
def test_allreduce_sum_is_bitwise_the_rank_ordered_sum(world, dtype):
    sizes = [1, 2, 7, 1001, 4097, 50_001]  # odd lengths; 50_001 x 8 B spans several 64 KiB pieces
    group = _group()
    xs = {n: _inputs(world, n, np.dtype(dtype), seed=n) for n in sizes}

    def rank(r: int) -> dict[int, np.ndarray]:
        c = ShmCollective(group, r, world, timeout=20, chunk_bytes=64 << 10)
        try:
            res = {}
            for n in sizes:
                buf = xs[n][r].copy()
                assert c.allreduce_(buf, "sum") is buf  # in place
                res[n] = buf
            return res
        finally:
            c.close()

    outs = _on_ranks(world, rank)
    for r, res in enumerate(outs):
        assert not isinstance(res, BaseException), res
        for n in sizes:
            ref = reference_allreduce(xs[n], "sum")
            assert res[n].dtype == ref.dtype and res[n].tobytes() == ref.tobytes(), (r, n)
    if world == 3 and dtype == "float32":  # the test can tell orders apart: another order differs somewhere
        a, b, c = xs[50_001]
        assert ((a + b) + c).tobytes() != (a + (b + c)).tobytes()


def test_mean_staging_and_mindspore_tensor():
    world, n = 3, 12_345
    group = _group()
    xs = _inputs(world, n, np.dtype("float32"), seed=1)

    def rank(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from mindspore import Tensor

        c = ShmCollective(group, r, world, timeout=20)
        try:
            mean = c.allreduce_(xs[r].copy(), "mean")
            staged = c.staging(n, np.float32)
            staged[:] = xs[r]
            s = c.allreduce_(staged).copy()  # a staging view is valid until the next collective
            t = Tensor(xs[r].copy())
            return mean, s, c.allreduce_(t).asnumpy()
        finally:
            c.close()

    ref_sum, ref_mean = reference_allreduce(xs, "sum"), reference_allreduce(xs, "mean")
    for res in _on_ranks(world, rank):
        assert not isinstance(res, BaseException), res
        mean, staged, tensor = res
        assert mean.tobytes() == ref_mean.tobytes()
        assert staged.tobytes() == ref_sum.tobytes() and tensor.tobytes() == ref_sum.tobytes()


def test_bad_input_names_the_problem():
    c = ShmCollective(_group(), 0, 1)
    try:
        with pytest.raises(ConfigError, match="op='mean'.*'sum' for the integer dtype int32"):
            c.allreduce_(np.ones(3, np.int32), "mean")
        with pytest.raises(ConfigError, match="contiguous 1-D"):
            c.allreduce_(np.ones((2, 2), np.float32))
        with pytest.raises(ConfigError, match="op='max'"):
            c.allreduce_(np.ones(2, np.float32), "max")
        x = np.arange(5, dtype=np.float64)
        assert c.allreduce_(x.copy()).tobytes() == x.tobytes()  # world of one: identity
    finally:
        c.close()
    with pytest.raises(ConfigError, match="rank=2"):
        ShmCollective(_group(), 2, 2)


def test_rebuild_smaller_then_larger_in_process():
    """Three ranks; rank 1 leaves, the other two rebuild as a group of two in the same objects; then a
    newcomer joins them as a group of three. Every result is the reference of the current members."""
    g1, g2, g3 = _group(), _group(), _group()
    cols: dict[int, ShmCollective] = {}
    xs = _inputs(3, 999, np.dtype("float32"), seed=2)

    def first(r: int) -> np.ndarray:
        cols[r] = ShmCollective(g1, r, 3, timeout=20)
        return cols[r].allreduce_(xs[r].copy())

    assert all(o.tobytes() == reference_allreduce(xs).tobytes() for o in _on_ranks(3, first))
    cols.pop(1).close()
    survivors = [0, 2]  # old ranks, new ranks 0 and 1

    def smaller(new: int) -> np.ndarray:
        c = cols[survivors[new]]
        c.rebuild(g2, new, 2)
        return c.allreduce_(xs[survivors[new]].copy())

    two = reference_allreduce([xs[0], xs[2]])
    assert all(o.tobytes() == two.tobytes() for o in _on_ranks(2, smaller))

    def larger(new: int) -> np.ndarray:
        if new == 2:
            cols[1] = ShmCollective(g3, 2, 3, timeout=20)
            c = cols[1]
        else:
            c = cols[survivors[new]]
            c.rebuild(g3, new, 3)
        return c.allreduce_(xs[[0, 2, 1][new]].copy())

    three = reference_allreduce([xs[0], xs[2], xs[1]])
    assert all(o.tobytes() == three.tobytes() for o in _on_ranks(3, larger))
    for c in cols.values():
        c.close()


def test_silent_peer_times_out_and_abort_interrupts():
    group = _group()
    c0_ready = threading.Event()
    cols: dict[int, ShmCollective] = {}

    def rank(r: int) -> Any:
        cols[r] = ShmCollective(group, r, 2, timeout=1.0)
        if r == 1:
            return None  # never calls the collective
        c0_ready.set()
        cols[0].allreduce_(np.ones(10, np.float32))

    out = _on_ranks(2, rank)
    assert isinstance(out[0], CommTimeoutError) and out[0].ranks == [1], out[0]
    assert "within 1.0 s" in str(out[0])

    cols[0].timeout = cols[0]._mesh.timeout = 60.0
    got: list[BaseException] = []

    def wait() -> None:
        try:
            cols[0].barrier()
        except BaseException as e:  # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    cols[0].abort()
    t.join(10)
    assert not t.is_alive() and isinstance(got[0], CommAbortedError)
    for c in cols.values():
        c.close()


_CHILD = """
import json, sys, time
import numpy as np
from openmindspore.elastic.comm import CommError, ShmCollective
group, rank, world, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = ShmCollective(group, rank, world, timeout=timeout, chunk_bytes=64 << 10)
buf = np.empty(1 << 18, np.float32)
print("looping", flush=True)
n = 0
try:
    while True:
        buf[:] = 1.0
        c.allreduce_(buf)
        assert buf[0] == world
        n += 1
except CommError as e:
    print(json.dumps({"kind": e.kind, "ranks": e.ranks, "t": time.time(), "iters": n, "msg": str(e)}), flush=True)
"""


def _start_group(world: int, timeout: float, group: str | None = None) -> list[subprocess.Popen]:
    group = group or _group()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    return [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, group, str(r), str(world), str(timeout)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in range(world)
    ]


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def _looping(ps: list[subprocess.Popen]) -> None:
    for p in ps:
        assert p.stdout.readline().strip() == "looping"
    time.sleep(0.3)  # well inside the loop of all-reduces


@pytest.mark.distributed
def test_peer_killed_mid_collective_survivors_fail_fast(procs):
    """Three processes all-reduce in a loop; rank 2 gets a real SIGKILL. Survivors must raise PeerLostError
    (raised only when the dead peer's socket closes: a timeout would be CommTimeoutError) naming rank 2,
    well within the 30 s hang timeout."""
    timeout = 30.0
    procs += _start_group(3, timeout)
    _looping(procs)
    t_kill = time.time()
    os.kill(procs[2].pid, signal.SIGKILL)
    reps = {}
    for r, p in enumerate(procs[:2]):
        line = p.stdout.readline()
        assert line, "a survivor ended without reporting"
        rep = reps[r] = json.loads(line)
        assert rep["kind"] == "peer_lost" and rep["iters"] > 0 and rep["t"] - t_kill < timeout / 3, rep
        assert p.wait(30) == 0
    assert_survivors_name(reps, 2)


@pytest.mark.distributed
def test_peer_stopped_mid_collective_survivor_times_out(procs):
    procs += _start_group(2, 1.5)
    _looping(procs)
    os.kill(procs[1].pid, signal.SIGSTOP)
    rep = json.loads(procs[0].stdout.readline())
    assert rep["kind"] == "timeout" and rep["ranks"] == [1] and "within 1.5 s" in rep["msg"], rep
    os.kill(procs[1].pid, signal.SIGKILL)


def test_killed_process_leaves_no_shared_memory(procs):
    group = _group()  # only this group's segments: other tests may run beside this one (pytest-xdist)
    procs += _start_group(2, 30.0, group)
    _looping(procs)
    for p in procs:
        p.kill()
        p.wait(10)
    if os.path.isdir("/dev/shm"):
        assert not [p for p in os.listdir("/dev/shm") if p.startswith(f"oms-comm-{group}-")]


def test_abort_of_a_group_not_yet_joined_fails_its_formation():
    c = ShmCollective(None, timeout=30.0)
    try:
        c.abort("given-up")  # the driver gave this formation up before the rank started to join
        t = time.monotonic()
        with pytest.raises(CommAbortedError, match="given-up"):
            c.rebuild("given-up", 0, 2)
        assert time.monotonic() - t < c.timeout / 3  # not a wait for the missing peer
    finally:
        c.close()


def test_backend_option_defaults_and_errors():
    from openmindspore.elastic import ElasticOptions

    assert ElasticOptions(workers=2).validate(32).comm == "shm"
    across = ElasticOptions(workers=2, address="10.0.0.1:6379").validate(32)
    assert across.comm == "tcp" and across.keeps_survivors  # may span nodes: shm within, TCP between
    with pytest.raises(ConfigError, match="--comm='nccl'.*one of \\['shm', 'tcp', 'mccl'\\]"):
        ElasticOptions(workers=2, comm="nccl").validate(32)
    with pytest.raises(ConfigError, match="did you mean tcp"):
        ElasticOptions(workers=2, comm="tpc").validate(32)
    with pytest.raises(ConfigError, match="--bucket-mb=0"):
        ElasticOptions(workers=2, bucket_mb=0).validate(32)


def test_snapshot_period_auto_keeps_the_state_copy_within_budget():
    from openmindspore.elastic import ElasticOptions

    auto = ElasticOptions(workers=2).validate(32)
    assert auto.snapshot_every is None
    assert auto.snapshot_period(0.001, 0.036, rebuildable=True) == 1  # default CNN: 1 ms copy, 36 ms step
    assert auto.snapshot_period(0.020, 0.085, rebuildable=True) == 5  # 10.6M MLP: 20 ms copy, 85 ms step
    assert auto.snapshot_period(0.020, None, rebuildable=True) == 1  # step time not measured yet
    assert auto.snapshot_period(0.020, 0.085, rebuildable=False) == 1  # MCCL survivors may not export state
    fixed = ElasticOptions(workers=2, snapshot_every=3).validate(32)
    assert fixed.snapshot_period(0.0, 1.0, rebuildable=False) == 3
    with pytest.raises(ConfigError, match="--snapshot-every=0.*or auto"):
        ElasticOptions(workers=2, snapshot_every=0).validate(32)


def test_snapshot_cost_is_measured_from_the_steps_it_slows():
    """The driver replaces the workers' start-up estimate by the measured cost: the extra time of the steps
    that ran while a snapshot was taken over the median of the others (3 of each needed)."""
    from openmindspore.elastic.snapshots import snapshot_cost_s

    assert snapshot_cost_s([0.05] * 10, [True] * 10) is None  # nothing to compare with: the estimate stands
    times = [0.05, 0.095, 0.051, 0.049, 0.05, 0.097, 0.052, 0.05, 0.3, 0.094]  # one unrelated 0.3 s spike
    flags = [False, True, False, False, False, True, False, False, False, True]
    assert snapshot_cost_s(times, flags) == pytest.approx(0.045)
    assert snapshot_cost_s(times[:6], flags[:6]) is None  # 2 with a snapshot
    assert snapshot_cost_s(times, flags, window=5) is None  # only the recent steps count
    # a snapshot that outlasts a short step: the extra time of the steps after it counts, summed
    times = [0.05, 0.09, 0.08, 0.05, 0.05, 0.09, 0.08, 0.05, 0.05, 0.09, 0.08, 0.05]
    flags = [False, True, False, False] * 3
    assert snapshot_cost_s(times, flags) == pytest.approx(0.07)
    # every 2nd step (a start-up estimate far too low): the step right after each request against the others,
    # so the period can grow; it was never measured before (no step was 3 away from a request)
    times = [0.05, 0.11, 0.05, 0.11, 0.05, 0.11, 0.052, 0.11]
    assert snapshot_cost_s(times, [False, True] * 4) == pytest.approx(0.06)


def test_overlapped_update_rolls_back_when_a_later_bucket_fails(ms_cpu):
    """The elastic worker's shm step computes each parameter's update as soon as its bucket is summed; when
    a later bucket's all-reduce fails (the peer left after the first bucket), nothing of the step stays:
    optimizer step count, optimizer state and parameters are bitwise those before the step."""
    from openmindspore.elastic.exchange import Overlapped
    from openmindspore.train import Trainer, config_from_dict

    tr = Trainer(
        config_from_dict(
            {
                "dataset": "digits",
                "model": {"name": "mlp", "hidden": [64]},
                "batch_size": 16,
                "steps": 5,
                "optimizer": {"name": "adam", "lr": 0.01},
            }
        )
    )
    tr.train_step()  # non-zero optimizer state
    t0, state0, params0 = tr.optimizer.t, {k: v.copy() for k, v in tr.optimizer.state_dict().items()}, tr.params_numpy()
    _, grads = tr.compute_grads(tr.next_indices())
    first = grads[0].size  # 64x64 weight: 16 KiB >= the 4 KiB pieces, so it is a bucket of its own
    group = _group()

    def rank(r: int) -> Any:
        c = ShmCollective(group, r, 2, timeout=5.0, chunk_bytes=4096)
        if r == 1:  # join the first bucket's all-reduce, then leave the group
            c.allreduce_(np.zeros(first, np.float32))
            c.close()
            return None
        try:
            return Overlapped(tr, c).run(grads, 0.01)
        finally:
            c.close()

    out = _on_ranks(2, rank)
    assert isinstance(out[0], CommError), out[0]
    assert tr.optimizer.t == t0
    after = tr.optimizer.state_dict()
    assert after.keys() == state0.keys() and all(np.array_equal(after[k], state0[k]) for k in state0)
    assert all(np.array_equal(p, params0[n]) for n, p in tr.params_numpy().items())
