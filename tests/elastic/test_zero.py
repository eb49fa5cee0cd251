"""The sharded optimizer (ZeRO-1 over shared memory): bitwise the full update, and every step's whole state
readable from the survivors when a rank dies (a real process, killed with SIGKILL, mid-step)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any

import numpy as np
import pytest

from oms_testing import ROOT
from openmindspore.elastic.comm import CommError, ShmCollective, reference_allreduce
from openmindspore.elastic.zero import RING, ShardedOptimizer

SHAPES = [(37, 29), (1,), (1000,), (3, 5, 7), (2049,)]  # odd sizes; pieces straddle parameters


def _make(opt_name: str, seed: int = 0) -> tuple[list[Any], Any]:
    from mindspore import Parameter, Tensor

    from openmindspore.train.optim import SGD, Adam

    rng = np.random.default_rng(seed)
    params = [Parameter(Tensor(rng.standard_normal(s).astype(np.float32)), name=f"p{i}") for i, s in enumerate(SHAPES)]
    opt = {
        "adam": lambda: Adam(params),
        "adam_l2": lambda: Adam(params, weight_decay=0.1),
        "adamw": lambda: Adam(params, weight_decay=0.1, decoupled=True),
        "sgd": lambda: SGD(params, momentum=0.9, weight_decay=0.01),
    }[opt_name]()
    return params, opt


def _grads(step: int, rank: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1000 * step + rank)
    return [(rng.standard_normal(int(np.prod(s))) * 10.0 ** rng.integers(-3, 3)).astype(np.float32) for s in SHAPES]


def _reference(opt_name: str, world: int, steps: int, lr: float = 0.01) -> tuple[list[np.ndarray], dict]:
    """One process, the full optimizer on the rank-ordered sum of every rank's gradients."""
    from mindspore import Tensor

    params, opt = _make(opt_name)
    for step in range(steps):
        per_rank = [np.concatenate(_grads(step, r)) for r in range(world)]
        summed = reference_allreduce(per_rank, "sum")
        at = np.cumsum([0, *(int(np.prod(s)) for s in SHAPES)])
        opt.step(tuple(Tensor(summed[at[i] : at[i + 1]].reshape(s)) for i, s in enumerate(SHAPES)), lr)
    return [p.asnumpy().copy() for p in params], {slot: [a.copy() for a in arrs] for slot, arrs in opt.state.items()}


def _join(
    group: str, rank: int, world: int, opt: Any, chunk: int, timeout: float = 30.0
) -> tuple[ShmCollective, ShardedOptimizer]:
    c = ShmCollective(None, timeout=timeout, chunk_bytes=chunk)
    c.rebuild(group, rank, world, extra_bytes=ShardedOptimizer.extra_bytes(opt, chunk, world, rank))
    z = ShardedOptimizer(opt, c)
    z.start(0, opt.state)
    return c, z


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("opt_name", ["adam", "adam_l2", "adamw", "sgd"])
def test_sharded_update_is_bitwise_the_full_update(world, opt_name, ms_cpu):
    steps, chunk = 3, 4096  # 1024-element pieces: every parameter layout case (inside one, across several)
    ref_params, ref_state = _reference(opt_name, world, steps)
    group, out = uuid.uuid4().hex[:12], [None] * world

    def rank(r: int) -> None:
        params, opt = _make(opt_name)
        c, z = _join(group, r, world, opt, chunk)
        try:
            for step in range(steps):
                z.step(step, _grads(step, r), [p.asnumpy().reshape(-1) for p in params], 0.01)
            out[r] = ([p.asnumpy().copy() for p in params], z.read(steps), opt.t)
        finally:
            c.close()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in range(world):
        assert out[r] is not None, f"rank {r} failed"
        params, state, t = out[r]
        assert t == steps
        assert all(np.array_equal(a, b) for a, b in zip(params, ref_params)), f"rank {r}: parameters differ"
        for slot, arrs in ref_state.items():
            assert all(np.array_equal(a, b) for a, b in zip(state[slot], arrs)), f"rank {r}: {slot} differs"


def test_ring_keeps_recent_steps_only_and_says_so(ms_cpu):
    group = uuid.uuid4().hex[:12]
    res: dict[int, Any] = {}

    def rank(r: int) -> None:
        params, opt = _make("adam")
        c, z = _join(group, r, 2, opt, 4096)
        try:
            for step in range(RING + 1):
                z.step(step, _grads(step, r), [p.asnumpy().reshape(-1) for p in params], 0.01)
            res[r] = z
            z.read(RING + 1)
            z.read(2)
            with pytest.raises(RuntimeError, match="state of step 0 is no longer held"):
                z.read(0)
        finally:
            c.barrier()
            c.close()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(res) == {0, 1}


_CHILD = """
import os, sys
sys.path[:0] = [{tests!r}, {tests_root!r}]
from test_zero import _grads, _join, _make
group, steps = sys.argv[1], int(sys.argv[2])
params, opt = _make("adam")
c, z = _join(group, 1, 2, opt, 4096)
for step in range(steps):
    z.step(step, _grads(step, 1), [p.asnumpy().reshape(-1) for p in params], 0.01)
print("done", flush=True)
os.kill(os.getpid(), 19)  # SIGSTOP: the test kills this process in the middle of the next step
"""


@pytest.mark.distributed
def test_killed_rank_mid_step_its_state_is_read_and_nothing_of_the_step_applied(ms_cpu):
    """Rank 1 is a real process: it completes 3 sharded steps and is SIGKILLed while rank 0 (this process)
    is inside step 4's exchange. Rank 0 gets a CommError, its optimizer is as after step 3, and the whole
    state of step 3 (rank 1's shard read from the dead process's shared memory) is bitwise the
    reference's."""
    steps, group = 3, uuid.uuid4().hex[:12]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        GLOG_v="3",
    )
    code = _CHILD.format(tests=str(ROOT / "tests" / "elastic"), tests_root=str(ROOT / "tests"))
    child = subprocess.Popen(
        [sys.executable, "-c", code, group, str(steps)], stdout=subprocess.PIPE, text=True, env=env
    )
    c = None
    try:
        params, opt = _make("adam")
        c, z = _join(group, 0, 2, opt, 4096, timeout=20.0)
        for step in range(steps):
            z.step(step, _grads(step, 0), [p.asnumpy().reshape(-1) for p in params], 0.01)
        assert child.stdout.readline().strip() == "done"
        before = [p.asnumpy().copy() for p in params]
        threading.Timer(0.3, os.kill, (child.pid, signal.SIGKILL)).start()  # rank 0 waits in step 4 by then
        with pytest.raises(CommError) as err:
            z.step(steps, _grads(steps, 0), [p.asnumpy().reshape(-1) for p in params], 0.01)
        assert err.value.kind == "peer_lost" and err.value.ranks == [1], err.value
        assert opt.t == steps
        ref_params, ref_state = _reference("adam", 2, steps)
        state = z.read(steps)
        for slot, arrs in ref_state.items():
            assert all(np.array_equal(a, b) for a, b in zip(state[slot], arrs)), slot
        assert all(np.array_equal(a, b) for a, b in zip(before, ref_params))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        if c is not None:
            c.close()
