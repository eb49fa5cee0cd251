"""The transformer CPU kernels (models/kernels/transformer: exact GELU, LayerNorm, tiled linear, patches,
softmax attention) compute what MindSpore's own ops compute, forward and gradients, bitwise independently of the
thread count; shapes cross every tile boundary (the linears' 2 x 2 grid of >= 384-row/column tiles, LayerNorm's
128 rows, 256 queries)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def fused(ms_cpu):
    from openmindspore.models.kernels import transformer as fused

    if not fused.available():
        pytest.skip("native kernels are off here (no g++ or no oneDNN in MindSpore)")
    yield fused
    fused.set_threads(2)


def _grads(fn, *args):
    import mindspore as ms
    from mindspore import Tensor

    value, grads = ms.value_and_grad(fn, tuple(range(len(args))))(*[Tensor(a) for a in args])
    return value.asnumpy(), [g.asnumpy() for g in (grads if isinstance(grads, tuple) else (grads,))]


def _close(a, b, tol=2e-5):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=0)


def _case(fused, name: str, rng: np.random.Generator):
    """``(ours, reference, inputs, cotangent shape)`` of one kernel (both functions of the same inputs)."""
    from mindspore import ops

    from openmindspore.models.vit.blocks import attention, gelu

    if name == "gelu":
        op = fused.GeluOp()
        return op, gelu, [4 * rng.standard_normal((3, 150, 7))], (3, 150, 7)
    if name == "layernorm":
        op, ln = fused.LayerNormOp(1e-6), ops.LayerNorm(-1, -1, 1e-6)
        args = [3 * rng.standard_normal((260, 48)) + 1, 1 + 0.1 * rng.standard_normal(48), rng.standard_normal(48)]
        return op, lambda x, w, b: ln(x, w, b)[0], args, (260, 48)
    if name == "linear":
        op = fused.LinearOp()
        # 800 x 790 outputs: 2 x 2 tiles (the column split on a multiple of 16: 384 + 406); dw: 2 x 1 tiles,
        # each summed over the rows in 2 parts of 400 (a small weight gradient is cut along its sum)
        args = [rng.standard_normal((800, 520)), rng.standard_normal((790, 520)) / 20, rng.standard_normal(790)]
        return op, lambda x, w, b: ops.matmul(x, w.T) + b, args, (800, 790)
    if name == "linear_residual":  # y = res + x w^T + b in one pass; the residual's gradient is dy
        op = fused.LinearOp("residual")
        args = [rng.standard_normal((800, 96)), rng.standard_normal((790, 96)) / 5, rng.standard_normal(790)]
        args.append(rng.standard_normal((800, 790)))
        return op, lambda x, w, b, r: r + (ops.matmul(x, w.T) + b), args, (800, 790)
    if name == "linear_gelu":  # GELU(x w^T + b) in one pass (inference); its backward recomputes x w^T + b
        op = fused.LinearOp("gelu")
        args = [rng.standard_normal((800, 96)), rng.standard_normal((790, 96)) / 5, rng.standard_normal(790)]
        return op, lambda x, w, b: gelu(ops.matmul(x, w.T) + b), args, (800, 790)
    if name == "patchify":  # 37 x 50 with 8x8 patches: the remainder rows/cols are dropped (zero gradient)
        op = fused.PatchifyOp(8)

        def patches(x):
            return x[:, :, :32, :48].reshape(2, 3, 4, 8, 6, 8).transpose(0, 2, 4, 1, 3, 5).reshape(48, 192)

        return op, patches, [rng.standard_normal((2, 3, 37, 50))], (48, 192)
    # self-attention with its projections: x [2, 300, 24], 3 heads of 8 (two query blocks)
    d, heads = 24, 3
    sa = fused.SelfAttention(d, heads)
    ws = [rng.standard_normal((d, d)) / 5 if i % 2 == 0 else rng.standard_normal(d) for i in range(8)]
    args = [rng.standard_normal((2, 300, d)), *ws]
    return sa, lambda x, *w: attention(x, *w, heads), args, (2, 300, d)


KERNELS = ["gelu", "layernorm", "linear", "linear_residual", "linear_gelu", "patchify", "attention"]


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_equals_mindspore_forward_and_backward(fused, name):
    from mindspore import Tensor

    rng = np.random.default_rng(KERNELS.index(name))
    ours, ref, args, out_shape = _case(fused, name, rng)
    args = [np.asarray(a, np.float32) for a in args]
    cot = Tensor(rng.standard_normal(out_shape).astype(np.float32))  # a random cotangent
    (v1, g1), (v2, g2) = (
        _grads(lambda *a: (ours(*a) * cot).sum(), *args),
        _grads(lambda *a: (ref(*a) * cot).sum(), *args),
    )
    _close(ours(*[Tensor(a) for a in args]).asnumpy(), ref(*[Tensor(a) for a in args]).asnumpy())
    _close(v1, v2, 1e-4)
    assert len(g1) == len(g2) == len(args)
    for i, (a, r) in enumerate(zip(g1, g2)):
        if name == "attention" and i == 4:
            # the key bias: softmax is invariant to it, so its true gradient is 0 and both sides hold only
            # rounding noise summed over 600 tokens; it must be noise next to the other gradients
            size = max(float(np.abs(g).max()) for g in g2)
            assert np.abs(a).max() < 1e-4 * size and np.abs(r).max() < 1e-4 * size
            continue
        assert np.abs(r).max() > 0  # every gradient is exercised
        _close(a, r)
    if name == "patchify":
        np.testing.assert_array_equal(g1[0], g2[0])  # a permutation: exact


def test_results_do_not_depend_on_the_thread_count(fused):
    from mindspore import Tensor

    rng = np.random.default_rng(7)
    for name in KERNELS:
        ours, _, args, out_shape = _case(fused, name, rng)
        args = [np.asarray(a, np.float32) for a in args]
        cot = Tensor(rng.standard_normal(out_shape).astype(np.float32))
        runs = []
        for threads in (1, 2, 5):
            fused.set_threads(threads)
            y = ours(*[Tensor(a) for a in args]).asnumpy()
            runs.append([y, *_grads(lambda *a, f=ours, c=cot: (f(*a) * c).sum(), *args)[1]])
        for other in runs[1:]:
            for a, b in zip(runs[0], other):
                np.testing.assert_array_equal(a, b, err_msg=name)


def test_gelu_is_exact_erf_not_tanh(fused):
    """Against float64 erf: the kernel's error is far below the tanh approximation's (~1e-3)."""
    import math

    from mindspore import Tensor

    x = np.linspace(-8, 8, 4001).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.abs(fused.GeluOp()(Tensor(x)).asnumpy() - exact).max() < 2e-6


def test_linear_with_gelu_is_gelu_of_the_linear_bitwise(fused):
    """The fused ``GELU(x w^T + b)`` (inference) equals the two kernels one after the other, bit for bit,
    at any thread count (the same product per tile, the same GELU arithmetic)."""
    from mindspore import Tensor

    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((800, 96), (790, 96), (790,)))
    args = [Tensor(x), Tensor(w / 5), Tensor(b)]
    expect = fused.GeluOp()(fused.LinearOp()(*args)).asnumpy()
    for threads in (1, 2, 5):
        fused.set_threads(threads)
        np.testing.assert_array_equal(fused.LinearOp("gelu")(*args).asnumpy(), expect)


def test_inference_mode_input_gradients_of_a_vit(fused):
    """Saliency maps are taken in inference mode, where the ViT's MLP runs the fused ``GELU(x w^T + b)``:
    its input gradient equals the unfused path's (fc1, then GELU) on the same weights."""
    from mindspore import nn

    from openmindspore.models.vit import build_vit
    from openmindspore.train.saliency import gradient_maps

    vit = build_vit("vit-tiny-patch16-224", image_size=28, patch_size=7, num_channels=1, num_labels=3)
    vit.vit.layers = vit.vit.layers[:1]  # one block is enough to cross the fused MLP

    class Logits(nn.Cell):
        def __init__(self) -> None:
            super().__init__(auto_prefix=False)
            self.vit = vit

        def construct(self, x):
            return self.vit(x)[0]

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 1, 28, 28)).astype(np.float32), np.array([0, 1, 2, 1], np.int32)
    loss = nn.CrossEntropyLoss()
    fused_maps = gradient_maps(Logits(), loss, x, y, compiled=False)
    mlp = vit.vit.layers[0].mlp
    mlp.fc1_gelu = None  # the unfused path: fc1, GELU, fc2
    plain = gradient_maps(Logits(), loss, x, y, compiled=False)
    assert np.abs(plain).max() > 0
    _close(fused_maps, plain, 1e-4)
