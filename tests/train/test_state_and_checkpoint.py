"""TrainState round-trips exactly; checkpoints are atomic and verified."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.errors import OMSError
from openmindspore.train import RunDir, Trainer, TrainState, config_from_dict

CFG = {
    "dataset": "synthetic",
    "batch_size": 16,
    "steps": 6,
    "seed": 5,
    "model": {
        "name": "cnn",
        "layers": [
            {"type": "conv", "channels": 4},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 8},
        ],
    },
}


def test_train_state_bytes_round_trip_is_exact(ms_cpu):
    t = Trainer(config_from_dict(CFG))
    for _ in range(3):
        t.train_step()
    s = t.state({"note": "x"})
    s2 = TrainState.from_bytes(s.to_bytes())
    assert s2.step == 3 and s2.sampler == s.sampler and s2.seed == 5 and s2.extra == {"note": "x"}
    assert s2.samples_seen == 48
    for k, v in s.params.items():
        assert np.array_equal(v, s2.params[k])
    assert set(s.opt_state) == set(s2.opt_state) and any(k.startswith("exp_avg.") for k in s.opt_state)
    assert any("moving_mean" in k for k in s.params)  # batch-norm statistics are state too


def test_loaded_state_continues_bitwise_like_the_original(ms_cpu):
    a = Trainer(config_from_dict(CFG))
    for _ in range(3):
        a.train_step()
    blob = a.state().to_bytes()
    for _ in range(3):
        a.train_step()
    b = Trainer(config_from_dict(CFG))
    b.load_state(TrainState.from_bytes(blob))
    for _ in range(3):
        b.train_step()
    assert a.params_sha256() == b.params_sha256()


def test_checkpoints_are_verified_and_pruned(ms_cpu, tmp_path):
    t = Trainer(config_from_dict(CFG))
    run = RunDir(tmp_path / "run", keep=2)
    for _ in range(4):
        t.train_step()
        run.save(t.state())
    names = sorted(p.name for p in run.ckpt_dir.glob("*.safetensors"))
    assert names == ["step_00000003.safetensors", "step_00000004.safetensors"]
    assert run.load_latest().step == 4
    blob = (run.ckpt_dir / "step_00000004.safetensors").read_bytes()
    (run.ckpt_dir / "step_00000004.safetensors").write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(OMSError, match="corrupted"):
        run.load_latest()


def test_garbage_bytes_are_rejected():
    with pytest.raises(OMSError, match="not a valid"):
        TrainState.from_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello")
