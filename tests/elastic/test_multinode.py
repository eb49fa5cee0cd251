"""Elastic training across the nodes of a real 2-node Ray cluster on this host (two raylets, two node ids):
the ``tcp`` backend (the default with ``--address``), a worker on the second node SIGKILLed, survivors kept,
nothing lost, bitwise the uninterrupted run; the second node lost as a whole. Also, on the same cluster with
small real actors in place of workers (their group-forming half only): a formation that fails during a
recovery keeps the survivors that still answer."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oms_testing import kill_session, oms_command, run_oms
from openmindspore.elastic.faults import FaultPlan
from openmindspore.elastic.membership import Membership
from openmindspore.elastic.messages import ConnectResult, Heartbeat, LoadResult
from openmindspore.elastic.options import ElasticOptions
from openmindspore.elastic.steps import GroupFailure
from openmindspore.engine import ActorRef, Engine, get_engine

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CONFIG = """\
dataset: digits
model:
  name: cnn
  layers:
    - {type: conv, channels: 8, kernel: 3}
    - {type: relu}
    - {type: maxpool, kernel: 2}
    - {type: dense, units: 32}
    - {type: relu}
optimizer: {name: adam, lr: 0.01}
batch_size: 32
steps: 8
seed: 3
log_every: 1
checkpoint_every: 4
"""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A head node and a second node (2 CPUs each) on this host; only its own processes are stopped."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        forget_as_default(c)
        c.add_node(num_cpus=2)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def forget_as_default(c: Any) -> None:
    """Ray's test cluster names itself the host's default cluster (``/tmp/ray/ray_current_cluster``), which
    a plain ``ray.init()`` in any process here would then join: take that back."""
    from ray._private.utils import get_ray_address_file

    f = Path(get_ray_address_file(None))
    if f.exists() and f.read_text().strip() == c.gcs_address:
        f.unlink(missing_ok=True)


@pytest.fixture
def cluster(ray_cluster: Any) -> str:
    return str(ray_cluster.address)


@pytest.fixture
def engine(ray_cluster: Any) -> Iterator[Engine]:
    """This test process joined to the cluster (left again after the test: the CLI runs need its CPUs)."""
    eng = get_engine("ray")
    eng.start(str(ray_cluster.address))
    try:
        yield eng
    finally:
        eng.shutdown()


def _toy_worker() -> type:
    """Defined in a function, so the engine ships the class by value (test modules are not importable in its
    worker processes)."""

    class ToyWorker:
        """A worker's group-membership half (no model): ``ready``, ``ping``, ``endpoint``, ``connect`` (the real
        TCP collective), ``abort`` and ``load`` as a worker does. ``firewalled``: the address it gives for its
        endpoint refuses connections, as a port a firewall blocks does."""

        def __init__(self, firewalled: bool = False) -> None:
            self.firewalled, self.comm = firewalled, None

        def ready(self) -> int:
            return os.getpid()

        def ping(self) -> Heartbeat:
            return Heartbeat(os.getpid(), 0)

        def endpoint(self, host: str) -> tuple[str, int]:
            import socket

            from openmindspore.elastic.comm import TcpCollective

            self.comm = TcpCollective(host)
            if not self.firewalled:
                return self.comm.address()
            with socket.socket() as s:  # a port nobody listens on: connections to it are refused
                s.bind((host, 0))
                return host, int(s.getsockname()[1])

        def connect(self, rank: int, size: int, spec: Any, pin: bool) -> ConnectResult:
            self.comm.timeout = spec.timeout
            self.comm.rebuild(spec.group, rank, size, spec.nodes, spec.addrs)
            return ConnectResult(rank, os.getpid(), 0.0, "toy", None)

        def abort(self, group: str | None = None) -> bool:
            self.comm.abort(group)
            return True

        def load(self, state: Any, faults: Any, fault_log: str = "") -> LoadResult:
            return LoadResult(0, 0, 0.0, 0.0)

    return ToyWorker


def _alive(engine: Engine, a: ActorRef) -> bool:
    f = engine.call(a, "ping")
    engine.wait([f], timeout=60.0)  # a live actor answers at once, a killed one fails at once
    return engine.outcome(f, timeout=0).ok


def _dies(engine: Engine, a: ActorRef, within_s: float = 120.0) -> bool:
    """``a`` stops answering within ``within_s`` (a kill is asynchronous: a ping right after it may still be
    answered on a loaded machine)."""
    until = time.monotonic() + within_s
    while time.monotonic() < until:
        if not _alive(engine, a):
            return True
        time.sleep(0.2)
    return False


def test_a_failed_formation_during_recovery_keeps_the_survivors_that_still_answer(engine, tmp_path):
    """Membership.retain: what keeps the survivor when the replacement taken for it sat on a node that had just
    died (not yet known dead to the engine) and the new group failed to form. The survivors that still answer
    stay (their processes, hence their state); every other member of the failed group is killed."""
    cls = _toy_worker()
    toys = [engine.spawn(cls, name=f"toy-{i}", concurrency=2) for i in range(4)]
    survivor, lost_survivor, dead_new, live_new = toys
    for a in toys:
        engine.get(engine.call(a, "ready"), timeout=120)
    members = Membership(engine, ElasticOptions(workers=4).resolve(32), {}, 32, FaultPlan((), tmp_path / "f.log"))
    try:
        members.group = [survivor, lost_survivor, dead_new, live_new]  # the group that failed to form
        engine.kill(lost_survivor)
        engine.kill(dead_new)
        assert _dies(engine, lost_survivor) and _dies(engine, dead_new)
        kept = members.retain([survivor, lost_survivor])
        assert kept == [survivor] and members.group == [survivor]
        assert _dies(engine, live_new)  # a replacement of the failed formation is released
        assert _alive(engine, survivor)  # its process, and the training state in it, stay
    finally:
        for a in toys:
            engine.kill(a)


def test_a_group_whose_nodes_cannot_reach_each_other_fails_once_with_the_address_and_the_fix(engine, tmp_path):
    """One member on each node; the first one's TCP port refuses connections (a firewall): forming the group
    fails after the members' connect deadline (3 x --hang-timeout) with the unreachable address and what to
    check, and is not retryable (every member is alive: other processes on these nodes would fail the same
    way), so the driver says so in one line at once instead of trying 3 times."""
    engine.reserve(2, "SPREAD")
    cls = _toy_worker()
    toys = [engine.spawn(cls, i == 0, name=f"toy-{i}", bundle=i, concurrency=4) for i in range(2)]
    for a in toys:
        engine.get(engine.call(a, "ready"), timeout=120)
    opts = ElasticOptions(workers=2, address="cluster", hang_timeout=1.0).resolve(32)
    members = Membership(engine, opts, {}, 32, FaultPlan((), tmp_path / "f.log"))
    try:
        with pytest.raises(GroupFailure) as failed:
            members.form_group(2, None, 0, keep=toys)
        f = failed.value
        assert len({w[0] for w in engine.bundle_nodes() if w}) == 2  # the two members are on two nodes
        assert not f.retryable and f.kind == "crash", f.detail
        assert "cannot reach rank 0 at" in f.detail and "firewall" in f.detail and "\n" not in f.detail, f.detail
    finally:
        for a in toys:
            engine.kill(a)


def _train(cluster: str, out: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    cfg = out.parent / "cfg.yaml"
    cfg.write_text(CONFIG)
    proc = run_oms(
        "train", str(cfg), "--out", str(out), "--json", "--address", cluster, "--workers", "2",
        "--placement", "SPREAD", "--min-workers", "2", *args, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc


def test_worker_on_second_node_killed_survivor_kept_bitwise(cluster, tmp_path):
    """The uninterrupted 2-worker run spans both nodes (one worker each, the default backend: tcp); rank 1 is
    SIGKILLed during step 3: its peer on the other node stays alive and keeps its state, 0 steps lost, every
    sample once, parameters bitwise those of the uninterrupted run; the recovery time is in the summary."""
    ref, _ = _train(cluster, tmp_path / "ref", "--spares", "0")
    assert ref["status"] == "completed" and ref["comm_s"]["backend"] == "tcp" and ref["recoveries"] == []
    s, _ = _train(cluster, tmp_path / "kill", "--spares", "1", "--kill-worker-at", "3:1")
    (r,) = s["recoveries"]
    assert r["kind"] == "crash" and r["failed_ranks"] == [1] and r["comm"] == "tcp", r
    assert r["nodes_before"] == 2, r  # the group spanned both nodes: the TCP path ran and failed over
    assert r["survivors_kept"] == 1 and r["steps_lost"] == 0, r
    assert r["recover_s"] is not None and r["recover_s"] > 0 and "first_step" in r["phases_s"], r
    assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0 and s["samples_seen"] == 8 * 32
    assert s["params_sha256"] == ref["params_sha256"]


def test_second_node_lost_recovered_from_the_survivors_state(ray_cluster, tmp_path):
    """The second node's raylet and every process on it are killed during training (the last test: the
    module's cluster keeps one node). 2 workers and 2 spares are spread over the two nodes, a worker and a
    spare on each; the surviving worker keeps the whole state of the last step (a group across nodes keeps
    the full optimizer state on every rank) and the group goes on on the head node (with the spare there):
    0 steps lost, every sample once."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("steps: 8", "steps: 150"))
    out = tmp_path / "node-lost"
    cmd = oms_command(
        "train", str(cfg), "--out", str(out), "--json", "--address", str(ray_cluster.address), "--workers", "2",
        "--placement", "SPREAD", "--rejoin-wait", "2",
    )  # fmt: skip
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        metrics, until = out / "metrics.jsonl", time.time() + 300
        while time.time() < until and proc.poll() is None:  # until step 3 is done
            rows = metrics.read_text().splitlines() if metrics.exists() else []
            if sum('"loss"' in r for r in rows) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        (second,) = [n for n in ray_cluster.list_all_nodes() if n is not ray_cluster.head_node]
        ray_cluster.remove_node(second, allow_graceful=False)  # its raylet and every worker on it
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 0, stderr[-3000:]
    s = json.loads(stdout)
    (r,) = s["recoveries"]
    # the node's raylet dies at once, its workers a moment later (as when a machine drops off the network,
    # their peers see no closed socket): the driver's step deadline classifies it as a hang
    said = stderr[-3000:]  # the driver's recovery lines, for a failure's message
    assert r["kind"] in ("crash", "hang") and len(r["failed_ranks"]) == 1, (r, said)
    assert (r["nodes_before"], r["nodes_after"]) == (2, 1) and r["world_after"] in (1, 2), (r, said)
    assert r["survivors_kept"] == 1 and r["steps_lost"] == 0, (r, said)
    assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0 and s["steps"] == 150  # every sample once
