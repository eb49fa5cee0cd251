"""Models, not trainers: a run is served from its config, signature and verified weights — no dataset, no
optimizer in the replica — and a corrupted or missing checkpoint is one clear error before anything deploys."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from oms_testing import ROOT, run_oms
from openmindspore.errors import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from openmindspore.train import config_from_dict, train

    out = tmp_path_factory.mktemp("run_model") / "digits"
    cfg = {"dataset": "digits", "model": {"name": "cnn"}, "steps": 4, "batch_size": 32, "checkpoint_every": 2}
    train(config_from_dict(cfg), out_dir=out)
    return out


def test_served_predictions_equal_the_trainer_and_use_the_pinned_checkpoint(run):
    from openmindspore.data import load_dataset
    from openmindspore.serve.registry import load_predictor, resolve_source
    from openmindspore.train.run import load_run

    rs = resolve_source(str(run))
    assert rs.checkpoint == run / "checkpoints" / "step_00000004.safetensors"  # LATEST, pinned
    assert rs.details["signature"] == {
        "task": "classification",
        "input_shape": [1, 8, 8],
        "num_outputs": 10,
        "class_names": None,
    }
    x = load_dataset("digits").x_test[:7].astype(np.float32)
    got = load_predictor(rs).predict({"x": x})
    _, trainer, _ = load_run(run)
    np.testing.assert_allclose(got["logits"], trainer.predict(x), rtol=1e-5, atol=1e-5)
    # an earlier checkpoint of the same run: its own weights
    older = load_predictor(str(run / "checkpoints" / "step_00000002.safetensors"))
    assert older.metadata()["checkpoint_step"] == 2
    assert not np.allclose(older.predict({"x": x})["logits"], got["logits"])


def test_a_replica_builds_no_dataset_and_no_trainer(run, tmp_path):
    """Load the prepared source in a fresh process, as a replica does: no dataset is ever loaded."""
    from openmindspore.serve.registry import resolve_source

    (tmp_path / "rs.pkl").write_bytes(pickle.dumps(resolve_source(str(run))))
    code = (
        "import pickle, sys, numpy as np\n"
        "from openmindspore.serve.registry import load_predictor\n"
        "from openmindspore.data import datasets\n"
        f"p = load_predictor(pickle.load(open({str(tmp_path / 'rs.pkl')!r}, 'rb')))\n"
        "p.warmup()\n"
        "print(p.predict({'x': np.zeros((2, 1, 8, 8), np.float32)})['label'].shape, len(datasets._CACHE))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "(2,) 0"  # a prediction, and no dataset in the cache


def test_corrupted_or_missing_checkpoint_is_one_error_before_anything_deploys(run, tmp_path):
    from openmindspore.serve.registry import resolve_source

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    ckpt = bad / "checkpoints" / "step_00000004.safetensors"
    blob = bytearray(ckpt.read_bytes())
    blob[-3] ^= 0xFF
    ckpt.write_bytes(bytes(blob))
    with pytest.raises(ConfigError, match=r"SHA-256.*corrupted.*serve an earlier checkpoint") as e:
        resolve_source(str(bad))
    assert str(ckpt) in str(e.value)
    p = run_oms("serve", str(bad), "--port", "9", timeout=120)  # fails before Ray or a port is touched
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "corrupted" in lines[0] and "SHA-256" in lines[0], p.stderr
    ckpt.unlink()
    with pytest.raises(ConfigError, match="missing"):
        resolve_source(str(bad))
    (bad / "checkpoints" / "step_00000002.json").unlink()
    with pytest.raises(ConfigError, match="manifest"):
        resolve_source(str(bad / "checkpoints" / "step_00000002.safetensors"))
