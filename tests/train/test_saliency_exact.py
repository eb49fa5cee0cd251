"""Exactness with key-feature augmentation: the saliency cache is part of TrainState, a resumed run is bitwise the
uninterrupted one, and every worker of a group sees the same maps and the same augmented samples as one process."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.train import RunDir, Trainer, config_from_dict, resume, train

BASE = {
    "dataset": "synthetic",  # 960 training rows of 1x8x8: 15 steps of 64 per epoch
    "model": {"name": "cnn", "layers": [{"type": "conv", "channels": 4, "kernel": 3}, {"type": "relu"}]},
    "batch_size": 64,
    "steps": 36,
    "seed": 4,
    "augment": [
        {"name": "shift", "max": 1},
        {"name": "keep_cutout", "size": 4, "keep": 4},
        {"name": "saliency_mix", "alpha": 1.0},
    ],
    "saliency": {"every": 1},
}


def _cfg(**over):
    return config_from_dict({**BASE, **over})


def test_resume_is_bitwise_and_the_maps_are_in_the_checkpoint(tmp_path):
    straight = train(_cfg(), tmp_path / "straight")
    train(_cfg(), tmp_path / "split", max_steps=20)
    state = RunDir(tmp_path / "split").load_latest()
    maps = state.arrays["saliency/maps"]
    assert maps.shape == (960, 8, 8) and maps.dtype == np.float32 and maps.max() > 0
    period, step = (int(v) for v in state.arrays["saliency/meta"])
    assert (period, step) == (1, 15)  # refreshed at the first step of epoch 1
    resumed = resume(tmp_path / "split")
    assert resumed["params_sha256"] == straight["params_sha256"]
    final = RunDir(tmp_path / "straight").load_latest().arrays
    assert int(final["saliency/meta"][0]) == 2
    assert np.array_equal(RunDir(tmp_path / "split").load_latest().arrays["saliency/maps"], final["saliency/maps"])


def test_refresh_every_k_epochs():
    tr = Trainer(_cfg(saliency={"every": 2}, steps=50))
    steps_at = []
    for _ in range(50):
        before = tr.saliency.refreshes
        tr.train_step()
        if tr.saliency.refreshes != before:
            steps_at.append(tr.saliency.step)
    assert steps_at == [0, 30]  # epochs 0 and 2 (15 steps an epoch)


def test_every_worker_sees_the_same_maps_and_samples():
    """One process vs the two ranks of a 2-worker group, stepping together (the ranks apply the sum of their
    gradients, as the exchange does): the ranks' maps are bitwise equal at every step; the augmented
    samples of the ranks, concatenated, are bitwise the single process's at the first step; the summed
    gradient is the single process's to float rounding (ranks sum their shards in another order)."""
    from mindspore import ops

    cfg = _cfg(steps=32)
    one, r0, r1 = Trainer(cfg), Trainer(cfg), Trainer(cfg)
    outs: dict[str, list] = {"one": [], "r0": [], "r1": []}
    for name, tr in (("one", one), ("r0", r0), ("r1", r1)):
        aug = tr.augmenter
        orig = aug.__class__.__call__

        def wrapped(*a, _orig=orig, _aug=aug, _name=name, **k):
            res = _orig(_aug, *a, **k)
            outs[_name].append(res)
            return res

        tr.augmenter = type("Spy", (), {"__call__": staticmethod(wrapped), "needs_saliency": True})()
    for step in range(32):
        idx = one.next_indices()
        assert np.array_equal(idx, r0.next_indices()) and np.array_equal(idx, r1.next_indices())
        _, g1 = one.compute_grads(idx)
        _, ga = r0.compute_grads(idx, 2, 0)
        _, gb = r1.compute_grads(idx, 2, 1)
        assert np.array_equal(r0.saliency.maps, r1.saliency.maps)
        if step == 0:
            assert np.array_equal(one.saliency.maps, r0.saliency.maps)
            a, b, c = outs["one"][0], outs["r0"][0], outs["r1"][0]
            assert np.array_equal(a.x, np.concatenate([b.x, c.x]))
            assert np.array_equal(a.soft, np.concatenate([b.soft, c.soft]))
            for x, y in zip(g1, [ops.add(u, v) for u, v in zip(ga, gb)]):
                np.testing.assert_allclose(x.asnumpy(), y.asnumpy(), rtol=1e-4, atol=1e-7)
        summed = tuple(ops.add(u, v) for u, v in zip(ga, gb))
        one.apply_grads(g1, len(idx))
        r0.apply_grads(summed, len(idx))
        r1.apply_grads(summed, len(idx))
    assert r0.params_sha256() == r1.params_sha256()
    assert r0.saliency.refreshes == r1.saliency.refreshes == 3


def test_backward_source_reuses_the_training_input_gradient(tmp_path):
    """``source: backward``: one refresh at the start, then each step's input gradient replaces its samples'
    maps (shifted back); a resumed run is bitwise the straight one; two workers are refused."""
    over = {"saliency": {"source": "backward"}, "steps": 24}
    tr = Trainer(_cfg(**over))
    assert tr.model.input_grad and tr.reuse_input_grad
    tr.train_step()
    first = tr.saliency.maps.copy()
    idx = tr.next_indices()
    tr.apply_grads(tr.compute_grads(idx)[1], len(idx))
    changed = np.flatnonzero((tr.saliency.maps != first).any(axis=(1, 2)))
    assert set(changed) <= set(idx.tolist()) and len(changed) > 32 and tr.saliency.refreshes == 1
    straight = train(_cfg(**over), tmp_path / "a")
    train(_cfg(**over), tmp_path / "b", max_steps=10)
    assert resume(tmp_path / "b")["params_sha256"] == straight["params_sha256"]
    with pytest.raises(ConfigError) as e:
        Trainer(_cfg(**over)).compute_grads(np.arange(64), 2, 0)
    assert e.value.field == "saliency.source" and "source: refresh" in str(e.value)


def test_without_augmentation_the_state_has_no_arrays_and_the_step_is_the_plain_one():
    cfg = config_from_dict({k: v for k, v in BASE.items() if k not in ("augment", "saliency")})
    tr = Trainer(cfg)
    assert tr.augmenter is None and tr.saliency is None and not tr.soft and not tr.model.input_grad
    tr.train_step()
    assert tr.state().arrays == {}
