"""Gradient clipping by global norm (``optimizer.clip_grad_norm``): torch's formula, applied to the global
gradient before the update in the compiled and the op-by-op step, off by default (bitwise today's run),
exact over resume; the AdamWeightDecay-style update (``bias_correction: false``)."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.train import RunDir, Trainer, config_from_dict, resume, train
from openmindspore.train.clip import clip_arrays

BASE = {
    "dataset": "synthetic",  # 960 training rows of 1x8x8
    "model": {"name": "cnn", "layers": [{"type": "conv", "channels": 4, "kernel": 3}, {"type": "relu"}]},
    "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01, "clip_grad_norm": 0.05},
    "batch_size": 64,
    "steps": 6,
    "seed": 2,
}


def _cfg(**opt):
    return config_from_dict({**BASE, "optimizer": {**BASE["optimizer"], **opt}})


@pytest.mark.parity
def test_clip_arrays_is_torch_clip_grad_norm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((7, 3), (5,), (2, 2, 4))]
    before = np.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays))  # ~5.4
    for max_norm in (0.5, 3.0, 100.0):
        ref = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
        for t in ref:
            t.grad = t.detach().clone()
        torch.nn.utils.clip_grad_norm_(ref, max_norm)
        got, scale = clip_arrays(arrays, max_norm)
        assert (scale is None) == (max_norm > before)
        for g, t in zip(got, ref):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=2e-7, atol=0)
        norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in got))
        assert norm == pytest.approx(min(max_norm, before), rel=1e-6)


@pytest.mark.parametrize("compile", [True, False])
def test_step_clips_the_global_gradient_before_the_update(compile):
    """One step = the unclipped trainer's gradient, scaled by max_norm / (norm + 1e-6), then AdamW."""
    clipped = Trainer(config_from_dict({**BASE, "compile": compile}))
    # the same execution mode on both sides: a compiled graph's gradients need not be bitwise the op-by-op
    # ones (they differ on an AVX-512 machine)
    plain = Trainer(
        config_from_dict({**BASE, "compile": compile, "optimizer": {**BASE["optimizer"], "clip_grad_norm": None}})
    )
    assert clipped.compiled == compile and clipped.params_sha256() == plain.params_sha256()
    idx = plain.next_indices()
    _, grads = plain.compute_grads(idx)
    arrays = [g.asnumpy() for g in grads]
    norm = np.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays))
    assert norm > 0.05 * 4  # the bound bites
    from mindspore import Tensor

    scale = np.float32(0.05 / (norm + 1e-6))
    plain.optimizer.step(tuple(Tensor(a * scale) for a in arrays), plain.lr_at(0))
    clipped.train_step()
    assert clipped.params_sha256() == plain.params_sha256()


def test_off_by_default_and_a_loose_bound_is_bitwise_no_clipping():
    a, b = Trainer(_cfg(clip_grad_norm=None)), Trainer(_cfg(clip_grad_norm=1e9))
    assert config_from_dict({}).optimizer.clip_grad_norm is None
    for _ in range(2):
        a.train_step(), b.train_step()
    assert a.params_sha256() == b.params_sha256()


def test_resume_with_clipping_is_bitwise(tmp_path):
    straight = train(_cfg(), tmp_path / "straight")
    train(_cfg(), tmp_path / "split", max_steps=3)
    assert RunDir(tmp_path / "split").load_latest().step == 3
    assert resume(tmp_path / "split")["params_sha256"] == straight["params_sha256"]


def test_adamw_without_bias_correction_is_mindspore_adamweightdecay(ms_cpu):
    """``bias_correction: false, eps: 1e-6`` is the update of ``nn.AdamWeightDecay`` (the former YOLOS loop's)."""
    from mindspore import Parameter, Tensor, nn

    from openmindspore.train.optim import create_optimizer

    rng = np.random.default_rng(1)
    init = rng.standard_normal((6, 5)).astype(np.float32)
    ours_p, ms_p = Parameter(Tensor(init.copy()), name="w"), Parameter(Tensor(init.copy()), name="w")
    ours = create_optimizer("adamw", [ours_p], weight_decay=0.1, eps=1e-6, bias_correction=False)
    ref = nn.AdamWeightDecay([ms_p], learning_rate=0.01, weight_decay=0.1, eps=1e-6)
    for _ in range(3):
        g = Tensor(rng.standard_normal((6, 5)).astype(np.float32))
        ours.step((g,), 0.01)
        ref((g,))
    np.testing.assert_allclose(ours_p.asnumpy(), ms_p.asnumpy(), rtol=1e-5, atol=1e-6)
    corrected = create_optimizer("adamw", [Parameter(Tensor(init.copy()), name="w")], weight_decay=0.1)
    corrected.step((g,), 0.01)
    assert not np.allclose(corrected.params[0].asnumpy(), ours_p.asnumpy(), atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1.0, "x"])
def test_bad_clip_grad_norm_names_the_field(bad):
    with pytest.raises(ConfigError) as e:
        _cfg(clip_grad_norm=bad)
    assert "optimizer.clip_grad_norm" in str(e.value)
