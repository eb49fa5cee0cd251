"""The fast CPU convolution equals MindSpore's nn.Conv2d, forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest

CASES = [  # in, out, kernel, stride, padding, H, W
    (3, 8, 3, 1, 1, 9, 7),
    (4, 6, 5, 2, 2, 11, 12),
    (2, 5, 1, 1, 0, 5, 5),
    (3, 4, 4, 4, 0, 16, 12),  # patch embedding: kernel == stride
    (3, 4, 3, 2, 0, 8, 8),
    (5, 7, 3, 1, (0, 1, 2, 1), 6, 9),  # asymmetric padding
]


@pytest.mark.parametrize("c,o,k,s,p,h,w", CASES)
def test_fast_conv_equals_nn_conv2d(ms_cpu, c, o, k, s, p, h, w):
    from mindspore import Tensor, nn, ops

    from openmindspore.models import Conv2d

    ms = ms_cpu
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, c, h, w)).astype(np.float32))
    fast = Conv2d(c, o, k, s, p, has_bias=True, fast=True, seed=1)
    pt, pb, pl, pr = fast.padding
    ref = nn.Conv2d(c, o, k, s, pad_mode="pad", padding=(pt, pb, pl, pr), has_bias=True)
    ref.weight.set_data(fast.weight.value())
    ref.bias.set_data(fast.bias.value())
    y_fast, y_ref = fast(x).asnumpy(), ref(x).asnumpy()
    assert y_fast.shape == y_ref.shape
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)

    dy = Tensor(rng.standard_normal(y_ref.shape).astype(np.float32))
    g_fast = ms.grad(lambda a: (fast(a) * dy).sum(), grad_position=0, weights=fast.trainable_params())
    g_ref = ms.grad(lambda a: (ref(a) * dy).sum(), grad_position=0, weights=ref.trainable_params())
    (dx_f, (dw_f, db_f)), (dx_r, (dw_r, db_r)) = g_fast(x), g_ref(x)
    for a, b_ in ((dx_f, dx_r), (dw_f, dw_r), (db_f, db_r)):
        a, b_ = a.asnumpy(), b_.asnumpy()
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b_).max())))
    assert float(ops.abs(dx_f).sum().asnumpy()) > 0  # gradients are not trivially zero


def test_fast_path_is_chosen_on_cpu_and_native_path_agrees(ms_cpu):
    from mindspore import Tensor

    from openmindspore.models import Conv2d
    from openmindspore.models.conv import use_fast_conv

    assert use_fast_conv()
    conv = Conv2d(2, 3, 3, 1, "same", seed=0)
    x = Tensor(np.ones((1, 2, 5, 5), np.float32))
    auto = conv(x).asnumpy()
    conv.fast = False
    np.testing.assert_allclose(auto, conv(x).asnumpy(), rtol=1e-5, atol=1e-6)


def test_fast_conv_gradients_are_deterministic(ms_cpu):
    from mindspore import Tensor

    from openmindspore.models import Conv2d

    ms = ms_cpu
    conv = Conv2d(8, 16, 3, 1, 1, seed=0)
    x = Tensor(np.random.default_rng(1).standard_normal((4, 8, 12, 12)).astype(np.float32))
    g = ms.grad(lambda a: (conv(a) ** 2).sum(), grad_position=0, weights=conv.trainable_params())
    first = [t.asnumpy() for t in (g(x)[0], *g(x)[1])]
    second = [t.asnumpy() for t in (g(x)[0], *g(x)[1])]
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_same_padding_rejects_even_kernels():
    from openmindspore.errors import ConfigError
    from openmindspore.models import Conv2d

    with pytest.raises(ConfigError, match="padding"):
        Conv2d(1, 1, 2, 1, "same")
