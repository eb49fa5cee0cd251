"""Fast CPU convolution (im2col gather + MatMul) vs MindSpore's native nn.Conv2d.

    python benchmarks/conv_cpu.py [--reps 5] [--mode pynative|compiled|both]

``pynative``: op by op, ``openmindspore.models.Conv2d`` (NCHW, hand-written backward) vs ``nn.Conv2d``.
``compiled``: forward and forward+backward each compiled with ``ms.jit``, as the training step runs
them: the channels-last ``ConvCL`` the CNN uses on CPU (NHWC input) vs ``nn.Conv2d`` (NCHW input).
One JSON line per shape and mode: median milliseconds for both, and the speed-ups (goal: >= 8x
forward+backward).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
from _util import emit, timeit

SHAPES = [  # N, C, H, W, O, k, stride, pad
    (64, 32, 14, 14, 64, 3, 1, 1),  # the reference measurement in DESIGN.md
    (64, 1, 28, 28, 32, 3, 1, 1),  # first layer of the default CNN
    (32, 64, 16, 16, 128, 3, 2, 1),
    (16, 3, 64, 64, 16, 5, 1, 2),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mode", choices=["pynative", "compiled", "both"], default="both")
    args = ap.parse_args()
    import mindspore as ms
    from mindspore import Tensor, nn

    from openmindspore.models import Conv2d
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    if args.mode in ("compiled", "both"):
        compiled(args.reps)
    if args.mode == "compiled":
        return
    for n, c, h, w, o, k, s, p in SHAPES:
        x = Tensor(np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32))
        fast = Conv2d(c, o, k, s, p, fast=True, seed=0)
        native = nn.Conv2d(c, o, k, s, pad_mode="pad", padding=p, has_bias=True)
        res = {}
        for name, net in (("fast", fast), ("native", native)):
            grad = ms.grad(lambda a, net=net: net(a).sum(), grad_position=0, weights=net.trainable_params())
            res[name] = _medians_ms(
                lambda net=net, x=x: net(x).asnumpy(),
                lambda grad=grad, x=x: [t.asnumpy() for t in (grad(x)[0], *grad(x)[1])][0],
                args.reps if name == "fast" else max(2, args.reps // 2),
            )
        _emit("pynative", (n, c, h, w, o, k, s), res)


def _medians_ms(fwd: Callable[[], object], fwd_bwd_twice: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median ms of a forward, and of a forward+backward (``fwd_bwd_twice`` runs it twice)."""
    return (statistics.median(timeit(fwd, reps)) * 1e3, statistics.median(timeit(fwd_bwd_twice, reps)) * 1e3 / 2)


def _emit(mode: str, shape: tuple[int, ...], res: dict[str, tuple[float, float]]) -> None:
    n, c, h, w, o, k, s = shape
    emit(
        {
            "bench": "conv_cpu",
            "mode": mode,
            "shape": f"{n}x{c}x{h}x{w} k{k} s{s} -> {o}",
            "fast_fwd_ms": round(res["fast"][0], 2),
            "native_fwd_ms": round(res["native"][0], 2),
            "fast_fwdbwd_ms": round(res["fast"][1], 2),
            "native_fwdbwd_ms": round(res["native"][1], 2),
            "speedup_fwd": round(res["native"][0] / res["fast"][0], 1),
            "speedup_fwdbwd": round(res["native"][1] / res["fast"][1], 1),
        }
    )


def compiled(reps: int) -> None:
    import mindspore as ms
    from mindspore import Tensor, nn

    from openmindspore.models._channels_last import ConvCL

    class SumOut(nn.Cell):
        def __init__(self, net: nn.Cell) -> None:
            super().__init__(auto_prefix=False)
            self.net = net

        def construct(self, x: Tensor) -> Tensor:
            return self.net(x).sum()

    for n, c, h, w, o, k, s, p in SHAPES:
        x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)
        fast = ConvCL(c, o, k, s, p, (h, w), seed=0)
        native = nn.Conv2d(c, o, k, s, pad_mode="pad", padding=p, has_bias=True)
        res = {}
        for name, net, xin in (("fast", fast, Tensor(x.transpose(0, 2, 3, 1).copy())), ("native", native, Tensor(x))):
            fwd_fn = ms.jit(net)
            grad = ms.value_and_grad(SumOut(net), 0, net.trainable_params())

            def step(a, grad=grad):
                return grad(a)

            both_fn = ms.jit(step)
            res[name] = _medians_ms(
                lambda f=fwd_fn, a=xin: f(a).asnumpy(),
                lambda f=both_fn, a=xin: [t.asnumpy() for t in (f(a)[1][0], *f(a)[1][1])][0],
                reps if name == "fast" else max(2, reps // 2),
            )
        _emit("compiled", (n, c, h, w, o, k, s), res)


if __name__ == "__main__":
    main()
