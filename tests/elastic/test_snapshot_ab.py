"""``--snapshot-ab``: the snapshot overhead measured within one run, blocks of steps without and with
snapshots alternating (benchmarks/recovery.py ``--only snapshot``). Steps are 1-based."""

from __future__ import annotations

import json

import pytest

from oms_testing import run_oms
from openmindspore.elastic import ElasticOptions
from openmindspore.elastic.snapshots import snapshot_due
from openmindspore.elastic.stats import ab_on, ab_overhead
from openmindspore.errors import ConfigError


def test_blocks_alternate_and_snapshots_fall_only_before_steps_in_blocks_with():
    assert [ab_on(s, 3) for s in range(1, 13)] == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    # the state after step s is taken when step s + 1 runs in a block with snapshots
    taken = [s for s in range(0, 13) if snapshot_due(s, lambda: 1, 3)]
    assert taken == [3, 4, 5, 9, 10, 11]
    assert [s for s in range(0, 13) if snapshot_due(s, lambda: 2, 3)] == [4, 10]  # the period still applies
    assert [s for s in range(1, 7) if snapshot_due(s, lambda: 2)] == [2, 4, 6]  # without blocks: the period


def test_overhead_compares_each_block_with_its_neighbours_without():
    block = 4
    times = []
    for step in range(1, 9 * block + 1):
        off = 0.10 + 0.0005 * step  # a machine that slows down steadily
        times.append(off * 1.05 if ab_on(step, block) else off)
    times[2 * block] = 0.5  # a block without starts with the last snapshot of the one before still running
    r = ab_overhead(times, 0, block, warmup_blocks=2, settle=1)
    assert r is not None and r["blocks"] == 3  # blocks 3, 5, 7 (0-based): after the 2 warm-up ones
    # the neighbours' mean cancels the linear drift; the 0.5 s step is the settling one, not counted
    assert r["overhead_median"] == pytest.approx(0.05, abs=0.003)
    assert abs(r["off_early_vs_late"]) < 0.02  # the blocks without had settled (only the drift)
    assert ab_overhead(times[: 2 * block], 0, block) is None  # warm-up only
    # a resumed run: step_times[0] is global step first_step + 1
    assert ab_overhead(times[block:], block, block, warmup_blocks=2, settle=1)["blocks"] == 3


def test_option_is_checked():
    with pytest.raises(ConfigError, match="--snapshot-ab=1"):
        ElasticOptions(workers=2, snapshot_ab=1)
    assert ElasticOptions(workers=2, snapshot_ab=10).resolve(32).snapshot_ab == 10


@pytest.mark.distributed
@pytest.mark.slow
def test_a_run_reports_the_overhead_measured_in_it(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "dataset: digits\nmodel: {name: mlp, hidden: [48]}\noptimizer: {name: adam, lr: 0.01}\n"
        "batch_size: 32\nsteps: 24\nseed: 5\nlog_every: 1\ncheckpoint_every: 1000\n"
    )
    args = ("--workers", "2", "--spares", "0", "--snapshot-every", "1", "--snapshot-ab", "4")
    proc = run_oms("train", str(cfg), "--out", str(tmp_path / "run"), "--json", *args, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ab = json.loads(proc.stdout)["snapshot_ab"]
    assert ab["block"] == 4 and ab["blocks"] == 2 and len(ab["ratios"]) == 2  # blocks 3 and 5, 0-based
