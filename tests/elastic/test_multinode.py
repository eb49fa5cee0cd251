"""Elastic training across the nodes of a real 2-node Ray cluster on this host (two raylets, two node ids):
the ``tcp`` backend (the default with ``--address``), a worker on the second node SIGKILLed, survivors kept,
nothing lost, bitwise the uninterrupted run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from oms_testing import run_oms

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
def cluster() -> Iterator[str]:
    """A head node and a second node (2 CPUs each) on this host; only its own processes are stopped."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        c.add_node(num_cpus=2)
        c.wait_for_nodes()
        yield str(c.address)
    finally:
        c.shutdown()


def _train(cluster: str, out: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    cfg = out.parent / "cfg.yaml"
    cfg.write_text(CONFIG)
    proc = run_oms(
        "train", str(cfg), "--out", str(out), "--json", "--address", cluster, "--workers", "2",
        "--placement", "SPREAD", *args, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc


def test_worker_on_second_node_killed_survivor_kept_bitwise(cluster, tmp_path):
    """The uninterrupted 2-worker run spans both nodes (one worker each, the default backend: tcp); rank 1 is
    SIGKILLed during step 3: its peer on the other node stays alive and keeps its state, 0 steps lost, every
    sample once, parameters bitwise those of the uninterrupted run; the recovery time is in the summary."""
    ref, _ = _train(cluster, tmp_path / "ref")
    assert ref["status"] == "completed" and ref["comm_s"]["backend"] == "tcp" and ref["recoveries"] == []
    s, _ = _train(cluster, tmp_path / "kill", "--kill-worker-at", "3:1")
    (r,) = s["recoveries"]
    assert r["kind"] == "crash" and r["failed_ranks"] == [1] and r["comm"] == "tcp", r
    assert r["nodes_before"] == 2, r  # the group spanned both nodes: the TCP path ran and failed over
    assert r["survivors_kept"] == 1 and r["steps_lost"] == 0, r
    assert r["recover_s"] is not None and r["recover_s"] > 0 and "first_step" in r["phases_s"], r
    assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0 and s["samples_seen"] == 8 * 32
    assert s["params_sha256"] == ref["params_sha256"]
