"""Fast CPU convolution (im2col gather + MatMul, custom backward) vs MindSpore's native nn.Conv2d.

    python benchmarks/conv_cpu.py [--reps 5]

One JSON line per shape: forward and forward+backward median milliseconds for both, and the speed-ups
(goal: >= 8x forward+backward).
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from _util import emit, timeit

SHAPES = [  # N, C, H, W, O, k, stride, pad
    (64, 32, 14, 14, 64, 3, 1, 1),   # the reference measurement in DESIGN.md
    (64, 1, 28, 28, 32, 3, 1, 1),    # first layer of the default CNN
    (32, 64, 16, 16, 128, 3, 2, 1),
    (16, 3, 64, 64, 16, 5, 1, 2),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import mindspore as ms
    from mindspore import Tensor, nn

    from openmindspore.models import Conv2d
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    for n, c, h, w, o, k, s, p in SHAPES:
        x = Tensor(np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32))
        fast = Conv2d(c, o, k, s, p, fast=True, seed=0)
        native = nn.Conv2d(c, o, k, s, pad_mode="pad", padding=p, has_bias=True)
        res = {}
        for name, net in (("fast", fast), ("native", native)):
            grad = ms.grad(lambda a, net=net: net(a).sum(), grad_position=0, weights=net.trainable_params())
            reps = args.reps if name == "fast" else max(2, args.reps // 2)
            fwd = timeit(lambda net=net: net(x).asnumpy(), reps)
            both = timeit(lambda grad=grad: [t.asnumpy() for t in (grad(x)[0], *grad(x)[1])][0], reps)
            res[name] = (statistics.median(fwd) * 1e3, statistics.median(both) * 1e3 / 2)
        emit({"bench": "conv_cpu", "shape": f"{n}x{c}x{h}x{w} k{k} s{s} -> {o}",
              "fast_fwd_ms": round(res["fast"][0], 2), "native_fwd_ms": round(res["native"][0], 2),
              "fast_fwdbwd_ms": round(res["fast"][1], 2), "native_fwdbwd_ms": round(res["native"][1], 2),
              "speedup_fwd": round(res["native"][0] / res["fast"][0], 1),
              "speedup_fwdbwd": round(res["native"][1] / res["fast"][1], 1)})


if __name__ == "__main__":
    main()
