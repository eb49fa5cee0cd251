"""Key-feature augmentation under elastic data parallelism (real processes, an embedded Ray cluster): a worker
killed mid-run is replaced and the result is bitwise the uninterrupted 2-worker run's (the saliency cache
travels in the snapshots and checkpoints); one process matches two workers to float rounding (the ranks sum
their shards' gradients in another order; the augmentation itself is per sample, see test_saliency_exact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oms_testing import run_oms

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CONFIG = """\
dataset: synthetic
train_subset: 128            # 4 steps of 32 an epoch: maps refreshed at steps 0, 4, 8
model:
  name: cnn
  layers:
    - {type: conv, channels: 4, kernel: 3}
    - {type: relu}
    - {type: dense, units: 16}
    - {type: relu}
optimizer: {name: adam, lr: 0.005}
batch_size: 32
steps: 12
seed: 5
log_every: 1
checkpoint_every: 3
augment: [{name: shift, max: 1}, {name: keep_cutout, size: 4, keep: 4}, {name: saliency_mix}]
saliency: {every: 1}
"""


def _train(tmp: Path, name: str, *args: str) -> dict:
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CONFIG)
    proc = run_oms("train", str(cfg), "--out", str(tmp / name), "--json", *args, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _state(run: Path):
    from openmindspore.train import RunDir

    return RunDir(run).load_latest()


def test_recovery_with_key_feature_ops_is_bitwise(tmp_path):
    ref = _train(tmp_path, "ref", "--workers", "2", "--spares", "0")
    assert ref["world_size"] == 2 and ref["recoveries"] == []
    faulty = _train(tmp_path, "faulty", "--workers", "2", "--spares", "1", "--kill-worker-at", "6:1")
    assert [r["kind"] for r in faulty["recoveries"]] == ["crash"]
    assert faulty["params_sha256"] == ref["params_sha256"]
    a, b = _state(tmp_path / "ref"), _state(tmp_path / "faulty")
    assert int(a.arrays["saliency/meta"][0]) == 2  # refreshed at epoch 2 (step 8), saved with the state
    assert np.array_equal(a.arrays["saliency/maps"], b.arrays["saliency/maps"])
    _train(tmp_path, "single")
    pa, ps = a.params, _state(tmp_path / "single").params
    for k in pa:
        np.testing.assert_allclose(pa[k], ps[k], rtol=1e-4, atol=1e-5, err_msg=k)
