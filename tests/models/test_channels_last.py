"""The CPU layout (channels-last layers) and the compiled training step compute what the NCHW PyNative
model computes: same parameters, same outputs and gradients, same training trajectory."""

from __future__ import annotations

import numpy as np
import pytest

# every layer kind, odd sizes (a pooling crop, strided and overlapping windows), padding on later convs
RICH_SPEC = [
    {"type": "conv", "channels": 6, "kernel": 3},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "kernel": 2},
    {"type": "dropout", "rate": 0.3},
    {"type": "conv", "channels": 5, "kernel": 5, "stride": 2, "padding": 2},
    {"type": "gelu"},
    {"type": "avgpool", "kernel": 3, "stride": 1},
    {"type": "conv", "channels": 4, "kernel": 1, "padding": 0},
    {"type": "conv", "channels": 4, "kernel": 3},
    {"type": "maxpool", "kernel": 2, "stride": 1},
    {"type": "dense", "units": 12},
    {"type": "dropout", "rate": 0.5},
]
GLOBAL_SPEC = [
    {"type": "conv", "channels": 4, "kernel": 3},
    {"type": "maxpool", "kernel": 2},
    {"type": "globalpool", "mode": "max"},
    {"type": "dense", "units": 8},
]


@pytest.mark.parametrize("spec", [RICH_SPEC, GLOBAL_SPEC], ids=["rich", "globalpool"])
def test_channels_last_equals_nchw(ms_cpu, spec):
    import mindspore as ms
    from mindspore import Tensor

    from openmindspore.models.cnn import CNN
    from openmindspore.models.layers import set_noise_key

    x = np.random.default_rng(0).standard_normal((4, 3, 23, 19)).astype(np.float32)
    samples = np.array([5, 9, 2, 7])
    got = {}
    for cl in (False, True):
        net = CNN(spec, (3, 23, 19), 4, seed=1, channels_last=cl)
        net.set_train(True)
        set_noise_key(3, 2, samples)

        def loss(a, net=net):
            return (net(a) ** 2).sum()

        value, grads = ms.value_and_grad(loss, None, net.trainable_params())(Tensor(x))
        masked = net.train_forward(Tensor(x), net.dropout_masks(3, 2, samples))
        got[cl] = (
            net(Tensor(x)).asnumpy(),
            masked.asnumpy(),
            [g.asnumpy() for g in grads],
            [(p.name, tuple(p.shape)) for p in net.get_parameters()],
        )
    nchw, nhwc = got[False], got[True]
    assert nchw[3] == nhwc[3]  # same parameter names and shapes: checkpoints move between layouts
    np.testing.assert_allclose(nhwc[0], nchw[0], atol=1e-5)
    np.testing.assert_array_equal(nhwc[1], nhwc[0])  # host-drawn masks == the keyed masks of PyNative
    for a, b in zip(nhwc[2], nchw[2]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _trajectory(compile_step: bool, steps: int = 4) -> tuple[list[float], dict[str, np.ndarray]]:
    from openmindspore.train import Trainer, config_from_dict

    cfg = config_from_dict(
        {
            "dataset": "digits",
            "batch_size": 32,
            "steps": 100,
            "seed": 5,
            "compile": compile_step,
            "model": {
                "name": "cnn",
                "layers": RICH_SPEC[:5]
                + [
                    {"type": "conv", "channels": 5, "kernel": 3},
                    {"type": "maxpool", "kernel": 3},
                    {"type": "dense", "units": 12},
                    {"type": "dropout", "rate": 0.5},
                ],
            },
            # SGD, not Adam: the conv bias before batch-norm has a true gradient of 0, so its computed gradient
            # is rounding noise whose sign Adam turns into a full +-lr step (compiled and PyNative round
            # differently on some CPUs); SGD keeps such noise at its own size
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        }
    )
    tr = Trainer(cfg)
    assert tr.compiled == compile_step
    losses = [tr.train_step() for _ in range(steps)]
    return losses, tr.params_numpy()


def test_compiled_step_follows_the_pynative_trajectory(ms_cpu):
    """After several optimizer updates the compiled graph must still read the live parameters (MindSpore
    2.10 graphs keep stale values for ``set_data`` and for the backward of ``ops.pad``: both avoided)."""
    loss_c, params_c = _trajectory(True)
    loss_p, params_p = _trajectory(False)
    np.testing.assert_allclose(loss_c, loss_p, rtol=1e-5)
    assert loss_c[-1] < loss_c[0]
    for name in params_p:
        np.testing.assert_allclose(params_c[name], params_p[name], atol=1e-5, err_msg=name)


def test_precompile_leaves_the_state_untouched(ms_cpu):
    from openmindspore.train import Trainer, config_from_dict

    cfg = config_from_dict(
        {
            "dataset": "digits",
            "batch_size": 16,
            "steps": 10,
            "seed": 2,
            "model": {
                "name": "cnn",
                "layers": [
                    {"type": "conv", "channels": 4, "kernel": 3},
                    {"type": "batchnorm"},
                    {"type": "maxpool", "kernel": 2},
                ],
            },
        }
    )
    a, b = Trainer(cfg), Trainer(cfg)
    before = a.params_numpy()
    a.precompile([16, 8, 5])
    after = a.params_numpy()
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    a.train_step(), b.train_step()
    assert a.params_sha256() == b.params_sha256()


def test_compiled_step_compiles_once_per_shape(ms_cpu):
    """Dropout masks are graph inputs, not constants: a new mask every step must not recompile (a ratio
    measured in one run: the compiling first step vs the steady steps)."""
    import time

    from openmindspore.train import Trainer, config_from_dict

    cfg = config_from_dict(
        {
            "dataset": "digits",
            "batch_size": 16,
            "steps": 100,
            "seed": 1,
            "model": {
                "name": "cnn",
                "layers": [
                    {"type": "conv", "channels": 4, "kernel": 3},
                    {"type": "dropout", "rate": 0.5},
                    {"type": "dense", "units": 8},
                ],
            },
        }
    )
    tr = Trainer(cfg)
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        tr.train_step()
        times.append(time.perf_counter() - t0)
    assert times[0] > 3 * float(np.median(times[2:])), times
