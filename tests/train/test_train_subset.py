"""``train_subset``: samples keep their original ids as dropout keys; resume and --workers N stay exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oms_testing import run_oms

SUBSET = [5, 17, 40, 41, 90, 300, 512, 1000, 1001, 1438, 2, 77]


def test_a_subset_row_trains_exactly_as_its_original_sample(ms_cpu):
    """Same sample, same step -> same dropout mask and the same gradients, inside a subset or not."""
    from openmindspore.train import Trainer, config_from_dict

    base = {"dataset": "digits", "model": {"name": "mlp", "hidden": [32], "dropout": 0.5}, "batch_size": 4}
    whole = Trainer(config_from_dict(base))
    part = Trainer(config_from_dict({**base, "train_subset": SUBSET}))
    assert len(part.data.x_train) == len(SUBSET) and part.params_sha256() == whole.params_sha256()
    rows = np.array([3, 7, 0, 11])
    ids = np.sort(SUBSET)[rows]  # a list of indices is a set: its rows are in index order
    assert part.data.sample_ids(rows).tolist() == ids.tolist()
    loss_p, grads_p = part.compute_grads(rows)
    loss_w, grads_w = whole.compute_grads(ids)
    assert loss_p == loss_w
    assert all(np.array_equal(a.asnumpy(), b.asnumpy()) for a, b in zip(grads_p, grads_w))
    sized = Trainer(config_from_dict({**base, "train_subset": 100, "seed": 4}))
    counts = np.bincount(sized.data.y_train, minlength=10)
    assert counts.sum() == 100 and counts.max() - counts.min() <= 2  # stratified over the 10 digits


CONFIG = """\
dataset: digits
model: {name: mlp, hidden: [32], dropout: 0.3}
optimizer: {name: adam, lr: 0.01}
batch_size: 16
epochs: 2
train_subset: 64
seed: 2
log_every: 1
checkpoint_every: 2
"""


def _run(tmp_path, name, *args):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    out = run_oms("train", str(cfg), "--out", str(tmp_path / name), "--json", *args, timeout=400, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_subset_resume_is_exact(tmp_path):
    straight = _run(tmp_path, "a")
    assert straight["steps"] == straight["total_steps"] == 8 and straight["samples_seen"] == 128
    _run(tmp_path, "b", "--max-steps", "3")
    res = run_oms("train", "--resume", str(tmp_path / "b"), "--json", timeout=400, check=True)
    assert json.loads(res.stdout)["params_sha256"] == straight["params_sha256"]


# heavy: subset exactness is test_subset_resume_is_exact and recovery is tests/elastic's; end to end in `make test-all`
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.distributed
def test_subset_two_workers_recover_bitwise(tmp_path):
    ref = _run(tmp_path, "ref", "--workers", "2")
    kill = _run(tmp_path, "kill", "--workers", "2", "--kill-worker-at", "5:1")
    assert ref["steps"] == kill["steps"] == 8  # 2 epochs of the 64-sample subset, as in one process
    assert kill["recoveries"] and kill["recoveries"][0]["steps_lost"] == 0
    assert kill["params_sha256"] == ref["params_sha256"]
    for s in (ref, kill):
        assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0 and s["samples_seen"] == 128
