"""The native CPU kernels (models/kernels: MindSpore Custom aot operators) compute what MindSpore's own
layers compute, forward and gradients, do not depend on the thread count, and the models fall back to the
MindSpore-only layers when the kernels are off."""

from __future__ import annotations

import shutil

import numpy as np
import pytest


@pytest.fixture
def native(ms_cpu):  # the kernels module, when the library builds here
    from openmindspore.models import kernels as native

    if not native.available():
        pytest.skip("native kernels are off here (no g++ or no oneDNN in MindSpore)")
    yield native
    native.set_threads(2)


@pytest.fixture
def native_off(ms_cpu):
    """Build models as if the kernels were unavailable (the state is restored afterwards)."""
    from openmindspore.models import kernels as native

    saved = dict(native._state)
    native._state["lib"] = None
    yield
    native._state.clear()
    native._state.update(saved)


def test_kernels_build_where_gxx_exists(ms_cpu):
    from openmindspore.models import kernels as native

    if shutil.which("g++") is None:
        pytest.skip("no g++ on this machine")
    assert native.available(), "g++ is here, so the kernel library must build (see the log for the compiler error)"


def _grads(fn, *args):
    import mindspore as ms
    from mindspore import Tensor

    value, grads = ms.value_and_grad(fn, tuple(range(len(args))))(*[Tensor(a) for a in args])
    return value.asnumpy(), [g.asnumpy() for g in grads]


def _close(a, b, tol=1e-5):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=0)


@pytest.mark.parametrize(
    "cin,cout,k,s,p,relu",
    [
        (1, 4, 3, 1, 1, True),
        (3, 5, 5, 2, 2, False),
        (4, 6, 1, 1, 0, True),
        (2, 3, 3, 2, 0, True),
        (5, 7, 4, 3, 1, False),
    ],
)
def test_conv_equals_conv2d(native, cin, cout, k, s, p, relu):
    from mindspore import Tensor, ops

    rng = np.random.default_rng(k * 10 + s)
    x = rng.standard_normal((3, 11, 9, cin)).astype(np.float32)
    w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ho, wo = (11 + 2 * p - k) // s + 1, (9 + 2 * p - k) // s + 1
    cot = Tensor(rng.standard_normal((3, ho, wo, cout)).astype(np.float32))  # a random cotangent
    op = native.ConvOp(s, p, relu, need_dx=True)

    def ours(x, w, b):
        return (op(x, w, b) * cot).sum()

    def ref(x, w, b):
        y = ops.conv2d(x.transpose(0, 3, 1, 2), w, b, stride=s, pad_mode="pad", padding=p).transpose(0, 2, 3, 1)
        return ((ops.relu(y) if relu else y) * cot).sum()

    (_, g1), (_, g2) = _grads(ours, x, w, b), _grads(ref, x, w, b)
    y = op(Tensor(x), Tensor(w), Tensor(b)).asnumpy()
    y_ref = (
        ops.conv2d(Tensor(x.transpose(0, 3, 1, 2)), Tensor(w), Tensor(b), stride=s, pad_mode="pad", padding=p)
        .asnumpy()
        .transpose(0, 2, 3, 1)
    )
    _close(y, np.maximum(y_ref, 0) if relu else y_ref)
    for a, r in zip(g1, g2):
        _close(a, r)
    no_dx = native.ConvOp(s, p, relu, need_dx=False)
    _, g3 = _grads(lambda x, w, b: (no_dx(x, w, b) * cot).sum(), x, w, b)
    assert not g3[0].any()  # the input gradient is skipped
    np.testing.assert_array_equal(g3[1], g1[1])


@pytest.mark.parametrize("relu,need_dx", [(True, True), (False, True), (True, False)])
def test_dense_equals_matmul(native, relu, need_dx):
    from mindspore import Tensor, ops

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((13, 37)).astype(np.float32), rng.standard_normal((19, 37)).astype(np.float32)
    b = rng.standard_normal(19).astype(np.float32)
    cot = Tensor(rng.standard_normal((13, 19)).astype(np.float32))
    op = native.DenseOp(relu, need_dx)

    def ref(x, w, b):
        y = ops.matmul(x, w.T) + b
        return ((ops.relu(y) if relu else y) * cot).sum()

    (v1, g1), (v2, g2) = _grads(lambda x, w, b: (op(x, w, b) * cot).sum(), x, w, b), _grads(ref, x, w, b)
    _close(v1, v2)
    _close(g1[1], g2[1])
    _close(g1[2], g2[2])
    if need_dx:
        _close(g1[0], g2[0])
    else:
        assert not g1[0].any()


@pytest.mark.parametrize("relu", [True, False])
def test_input_only_gradient_is_bitwise_the_input_gradient_and_skips_the_weights(native, relu):
    """``need_dw=False`` (saliency maps' twin): d/dx bitwise as with the weight gradients, which are zeros;
    the conv batch spans several of the kernel's image chunks."""
    from mindspore import Tensor

    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 30, 30, 8)).astype(np.float32)  # 900 x 72 columns an image: 4 images a chunk
    w, b = rng.standard_normal((6, 8, 3, 3)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    cot = Tensor(rng.standard_normal((9, 30, 30, 6)).astype(np.float32))
    both, only = native.ConvOp(1, 1, relu, need_dx=True), native.ConvOp(1, 1, relu, need_dx=True, need_dw=False)
    (v1, g1), (v2, g2) = (_grads(lambda x, w, b, op=op: (op(x, w, b) * cot).sum(), x, w, b) for op in (both, only))
    assert v1 == v2 and g1[1].any() and g1[0].any()
    np.testing.assert_array_equal(g2[0], g1[0])
    assert not g2[1].any() and not g2[2].any()
    for threads in (1, 3):  # and the input gradient alone does not depend on the thread count either
        native.set_threads(threads)
        _, g4 = _grads(lambda x, w, b: (only(x, w, b) * cot).sum(), x, w, b)
        np.testing.assert_array_equal(g4[0], g1[0])
    native.set_threads(2)
    xd, wd = rng.standard_normal((13, 600)).astype(np.float32), rng.standard_normal((700, 600)).astype(np.float32)
    bd, cotd = rng.standard_normal(700).astype(np.float32), Tensor(rng.standard_normal((13, 700)).astype(np.float32))
    dense = [native.DenseOp(relu, True), native.DenseOp(relu, True, need_dw=False)]  # 2 blocks of 512 each way
    (_, d1), (_, d2) = (_grads(lambda x, w, b, op=op: (op(x, w, b) * cotd).sum(), xd, wd, bd) for op in dense)
    np.testing.assert_array_equal(d2[0], d1[0])
    assert d1[1].any() and not d2[1].any() and not d2[2].any()


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_and_permute_equal_mindspore(native, k, s):
    from mindspore import Tensor, nn

    rng = np.random.default_rng(k + s)
    x = rng.standard_normal((2, 9, 7, 5)).astype(np.float32)
    ho, wo = (9 - k) // s + 1, (7 - k) // s + 1
    cot = Tensor(rng.standard_normal((2, ho, wo, 5)).astype(np.float32))
    op, pool = native.MaxPoolOp(k, s), nn.MaxPool2d(k, s, pad_mode="valid")
    to_nchw, to_nhwc = native.Permute(to_nchw=True), native.Permute(to_nchw=False)

    def ref(x):
        return (pool(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1) * cot).sum()

    def ours(x):  # the permutes around MindSpore's pool: their gradients are each other
        return (to_nhwc(pool(to_nchw(x))) * cot).sum() + (op(x) * cot).sum()

    (v1, g1), (v2, g2) = _grads(ours, x), _grads(ref, x)
    _close(v1, 2 * v2)
    _close(g1[0], 2 * g2[0])


def _cnn_grads(spec, x, threads=None):
    import mindspore as ms
    from mindspore import Tensor

    from openmindspore.models import kernels as native
    from openmindspore.models.cnn import CNN

    if threads:
        native.set_threads(threads)
    net = CNN(spec, x.shape[1:], 10, seed=3)
    loss = lambda a: (net(a) ** 2).sum()  # noqa: E731
    value, grads = ms.value_and_grad(loss, None, net.trainable_params())(Tensor(x))
    return net, value.asnumpy(), [g.asnumpy() for g in grads]


SPEC = [
    {"type": "conv", "channels": 8, "kernel": 3},
    {"type": "relu"},
    {"type": "maxpool", "kernel": 2},
    {"type": "conv", "channels": 6, "kernel": 3, "stride": 2},
    {"type": "activation", "fn": "relu"},
    {"type": "dense", "units": 16},
    {"type": "relu"},
]


def test_results_do_not_depend_on_the_thread_count(native):
    x = np.random.default_rng(2).standard_normal((9, 3, 17, 15)).astype(np.float32)
    _, v1, g1 = _cnn_grads(SPEC, x, threads=1)
    _, v2, g2 = _cnn_grads(SPEC, x, threads=2)
    _, v3, g3 = _cnn_grads(SPEC, x, threads=5)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(v1, v3)
    for a, b, c in zip(g1, g2, g3):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_fused_relu_model_equals_the_fallback(native, native_off):
    from mindspore import nn

    x = np.random.default_rng(4).standard_normal((5, 3, 17, 15)).astype(np.float32)
    plain, v_plain, g_plain = _cnn_grads(SPEC, x)  # native_off: MindSpore-only layers
    native._state.clear()  # the kernels back on
    fast, v_fast, g_fast = _cnn_grads(SPEC, x)
    assert not any(isinstance(c, nn.Identity) for c in plain.body.cell_list)
    assert sum(isinstance(c, nn.Identity) for c in fast.body.cell_list) == 3  # the three ReLUs were fused
    assert [p.name for p in plain.get_parameters()] == [p.name for p in fast.get_parameters()]
    _close(v_fast, v_plain)
    for a, b in zip(g_fast, g_plain):
        _close(a, b)


@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.01, False), (0.05, True)])
def test_fused_adam_is_bitwise_the_numpy_adam(native, weight_decay, decoupled):
    from mindspore import Parameter, Tensor

    from openmindspore.train.optim import Adam

    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s).astype(np.float32) for s in ((33, 7), (10_001,))]
    grads = [[Tensor(rng.standard_normal(a.shape).astype(np.float32)) for a in init] for _ in range(3)]

    def run(fused: bool):
        params = [Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)]
        opt = Adam(params, weight_decay=weight_decay, decoupled=decoupled)
        saved = dict(native._state)
        if not fused:
            native._state["lib"] = None
        try:
            for t, g in enumerate(grads):
                opt.step(g, 1e-2 * (t + 1))
        finally:
            native._state.clear()
            native._state.update(saved)
        return [p.asnumpy().copy() for p in params], opt.state_dict()

    (p1, s1), (p0, s0) = run(True), run(False)
    for a, b in zip(p1, p0):
        np.testing.assert_array_equal(a, b)
    for k in s0:
        np.testing.assert_array_equal(s1[k], s0[k])
    assert not np.array_equal(p1[0], init[0])
