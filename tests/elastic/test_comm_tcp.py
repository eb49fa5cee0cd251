"""The cross-node collective (``tcp``): shared memory among a node's ranks, TCP between nodes; bitwise the
rank-ordered reference (hence ``shm``), failure-aware, rebuildable in a live process.

"Nodes" are node ids given to ``rebuild``: ranks with different ids talk TCP even on this one host, which
is what the test needs. Ranks run as threads (the collective shares only memory and sockets) except where
a process must die: those tests start real processes and send a real SIGKILL.
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
from openmindspore.elastic.comm import (
    CommAbortedError,
    CommTimeoutError,
    PeerLostError,
    ShmCollective,
    TcpCollective,
    reference_allreduce,
)


def _formed(nodes: str, timeout: float = 20.0, chunk: int = 64 << 10) -> tuple[list[TcpCollective], Any]:
    """Collectives of one group whose rank k is on node ``nodes[k]``, and a function that rebuilds rank r."""
    cols = [TcpCollective(timeout=timeout, chunk_bytes=chunk) for _ in nodes]
    addrs = [c.address() for c in cols]
    group = uuid.uuid4().hex[:12]
    return cols, lambda r: cols[r].rebuild(group, r, len(nodes), list(nodes), addrs)


@pytest.mark.parametrize(
    ("nodes", "dtype"),
    [
        ("ab", "float32"),
        ("aab", "float32"),
        ("abab", "float64"),
        ("abc", "float32"),
        ("aba", "int32"),
        ("ab", "float16"),
    ],
)
def test_allreduce_is_bitwise_the_rank_ordered_sum_across_nodes(nodes, dtype):
    """Ragged sizes (odd, smaller than the world, several 64 KiB pieces), every layout of ranks on nodes
    (a node with one rank, with several, interleaved): bitwise the reference, the same on every rank."""
    world, sizes = len(nodes), [1, 2, 7, 1001, 50_001]
    xs = {n: _inputs(world, n, np.dtype(dtype), seed=n) for n in sizes}
    cols, form = _formed(nodes)

    def rank(r: int) -> dict[int, np.ndarray]:
        form(r)
        out = {}
        for n in sizes:
            buf = xs[n][r].copy()
            assert cols[r].allreduce_(buf, "sum") is buf
            out[n] = buf
        return out

    try:
        outs = _on_ranks(world, rank)
    finally:
        for c in cols:
            c.close()
    for r, res in enumerate(outs):
        assert not isinstance(res, BaseException), res
        for n in sizes:
            ref = reference_allreduce(xs[n], "sum")
            assert res[n].tobytes() == ref.tobytes(), (nodes, r, n)


@pytest.mark.parametrize("nodes", ["ab", "abc"])
def test_gradient_exchange_sums_large_gradients_in_place_bitwise(nodes, ms_cpu):
    """The elastic worker's exchanges over tcp (all-reduce, overlapped update): gradients of at least four
    pieces are summed in their own tensors' memory (no flattening copy; the tensor handed to the update is
    the gradient itself), small ones packed together; sums bitwise the rank-ordered reference of the
    flattened gradients on every rank (3 nodes: rank 2 sums apart from its piece), and the overlapped update
    bitwise the optimizer's step on that reference."""
    from mindspore import Parameter, Tensor

    from openmindspore.elastic.exchange import AllReduce, exchange_and_compute
    from openmindspore.train.optim import Adam

    # 64 KiB pieces: in place from 4 pieces (256 KiB) on; 80 KB (1-2 pieces) packed with the small ones
    world, shapes = len(nodes), [(7,), (300, 250), (5, 3), (20_000,), (2,), (70_000,), (3,)]
    sizes = [int(np.prod(s)) for s in shapes]
    xs = _inputs(world, sum(sizes), np.dtype("float32"), seed=11)
    at = np.cumsum([0, *sizes])
    ref = reference_allreduce(xs, "sum")
    cols, form = _formed(nodes)

    def grads(r: int) -> tuple:
        return tuple(Tensor(xs[r][at[i] : at[i + 1]].reshape(s).copy()) for i, s in enumerate(shapes))

    def adam() -> Adam:
        return Adam([Parameter(Tensor(np.full(s, 0.5, np.float32)), name=f"p{i}") for i, s in enumerate(shapes)])

    def rank(r: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        form(r)
        g = grads(r)
        ex = AllReduce(None, cols[r])  # type: ignore[arg-type]  # run() uses only the collective
        ex.run(g, 0.01)
        assert all(ex._grads[i] is g[i] for i in (1, 5))  # summed in place
        assert not any(ex._grads[i] is g[i] for i in (0, 2, 3, 4, 6))  # packed
        news = exchange_and_compute(adam(), cols[r], grads(r), 0.01)
        return [t.asnumpy().reshape(-1).copy() for t in ex._grads], news

    try:
        outs = _on_ranks(world, rank)
    finally:
        for c in cols:
            c.close()
    expected = adam()
    expected.step(tuple(Tensor(ref[at[i] : at[i + 1]].reshape(s)) for i, s in enumerate(shapes)), 0.01)
    for r, res in enumerate(outs):
        assert not isinstance(res, BaseException), res
        summed, news = res
        assert np.concatenate(summed).tobytes() == ref.tobytes(), (nodes, r)
        assert all(n.tobytes() == p.asnumpy().tobytes() for n, p in zip(news, expected.params)), (nodes, r)


def test_mean_and_equal_to_shm_then_rebuilt_smaller_in_process():
    """The mean over nodes equals the reference and the one-node shm backend bit for bit; then rank 1 leaves,
    and the survivors (one per node) rebuild a group of 2 in the same objects and sum correctly."""
    n = 30_001
    xs = _inputs(3, n, np.dtype("float32"), seed=7)
    cols, form = _formed("aba")
    shm_group = uuid.uuid4().hex[:12]

    def rank(r: int) -> tuple[np.ndarray, np.ndarray]:
        form(r)
        s = ShmCollective(shm_group, r, 3, timeout=20)
        try:
            return cols[r].allreduce_(xs[r].copy(), "mean"), s.allreduce_(xs[r].copy(), "mean")
        finally:
            s.close()

    group2 = uuid.uuid4().hex[:12]
    addrs = [cols[0].address(), cols[2].address()]

    def survivor(i: int) -> np.ndarray:
        c = cols[2 * i]
        c.rebuild(group2, i, 2, ["a", "b"], addrs)
        return c.allreduce_(xs[2 * i].copy(), "sum")

    try:
        ref = reference_allreduce(xs, "mean")
        for tcp, shm in _on_ranks(3, rank):
            assert tcp.tobytes() == ref.tobytes() == shm.tobytes()
        ref2 = reference_allreduce([xs[0], xs[2]], "sum")
        for out in _on_ranks(2, survivor):
            assert not isinstance(out, BaseException), out
            assert out.tobytes() == ref2.tobytes()
    finally:
        for c in cols:
            c.close()


def test_unreachable_peer_and_abort():
    """A peer whose endpoint does not answer: a CommTimeoutError naming its address and what to check; abort()
    from another thread interrupts a wait for a silent peer on another node."""
    c = TcpCollective(timeout=1.0)
    with socket_closed() as port:
        with pytest.raises(CommTimeoutError, match=f"cannot reach rank 0 at 127.0.0.1:{port}.*firewall"):
            c.rebuild("unreachable", 1, 2, ["a", "b"], [("127.0.0.1", port), c.address()])
        c.timeout = 60.0
        timer = threading.Timer(0.3, c.abort)
        timer.start()
        t = time.monotonic()
        with pytest.raises(CommAbortedError):  # the driver gave the formation up: no wait for the deadline
            c.rebuild("unreachable-2", 1, 2, ["a", "b"], [("127.0.0.1", port), c.address()])
        assert time.monotonic() - t < 60.0 / 3
    c.close()

    cols, form = _formed("ab", timeout=60.0)

    def rank(r: int) -> Any:
        form(r)
        if r == 0:
            t = time.monotonic()
            try:
                cols[0].allreduce_(np.ones(10, np.float32))
            except CommAbortedError:
                return time.monotonic() - t
        return None

    timer = threading.Timer(0.5, cols[0].abort)
    timer.start()
    try:
        out = _on_ranks(2, rank)
    finally:
        timer.cancel()
        for col in cols:
            col.close()
    assert isinstance(out[0], float) and out[0] < 60.0 / 3, out  # aborted, not timed out


class socket_closed:
    """A local TCP port with nothing listening (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *_: Any) -> None:
        return None


_CHILD = """
import json, sys, time
import numpy as np
from openmindspore.elastic.comm import CommError, TcpCollective
rank, world, nodes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = TcpCollective(timeout=30.0, chunk_bytes=64 << 10)
print(json.dumps(c.address()), flush=True)
group, addrs = json.loads(sys.stdin.readline())
c.rebuild(group, rank, world, list(nodes), [tuple(a) for a in addrs])
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
    print(json.dumps({"kind": e.kind, "ranks": e.ranks, "t": time.time(), "iters": n}), flush=True)
"""


@pytest.mark.distributed
def test_peer_on_other_node_killed_survivors_on_every_node_fail_fast():
    """Ranks 0, 2 on node a and 1 on node b all-reduce in a loop (real processes); rank 1 gets SIGKILL. Both
    survivors raise PeerLostError (the socket closed: a timeout would be CommTimeoutError) well within the 30 s
    timeout, naming rank 1 (see below for the one interleaving where a survivor names the other)."""
    nodes, world = "aba", 3
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(r), str(world), nodes],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in range(world)
    ]
    try:
        addrs = [json.loads(p.stdout.readline()) for p in procs]
        spec = json.dumps([uuid.uuid4().hex[:12], addrs]) + "\n"
        for p in procs:
            p.stdin.write(spec)
            p.stdin.flush()
        for p in procs:
            assert p.stdout.readline().strip() == "looping"
        time.sleep(0.3)
        t_kill = time.time()
        os.kill(procs[1].pid, signal.SIGKILL)
        reps = {}
        for r in (0, 2):
            rep = reps[r] = json.loads(procs[r].stdout.readline())
            assert rep["kind"] == PeerLostError.kind and rep["iters"] > 0 and rep["t"] - t_kill < 30.0 / 3, rep
            assert procs[r].wait(30) == 0
        assert_survivors_name(reps, 1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
