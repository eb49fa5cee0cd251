"""Probe: the default CNN's compiled forward+backward in a layout with no transposes (channels first, then
batch: ``[C, N, H, W]``; the im2col MatMul ``W @ cols`` yields the next layer's input and NCHW pooling
applies as is) vs the model's channels-last layout, interleaved in one process; checks the gradients
agree. Recorded in docs/benchmarks.md ("Training step vs PyTorch"); the layout was not adopted.

    python benchmarks/layout_probe.py
"""

import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

import openmindspore.models.cnn as cnn
from openmindspore.models._channels_last import padded_patches

N = 64
rng = np.random.default_rng(0)


class ConvCNHW(nn.Cell):
    def __init__(self, cin, cout, k, pad, hw, n, src):
        super().__init__()
        self.weight = Parameter(Tensor(src.weight.asnumpy()), name="weight")
        self.bias = Parameter(Tensor(src.bias.asnumpy()), name="bias")
        h, w = hw
        idx, ho, wo = padded_patches(h, w, k, 1, pad)
        L, kk, HW = ho * wo, k * k, h * w
        base = idx.reshape(L, kk).T
        full = base[:, None, :] + (np.arange(n) * HW)[None, :, None]
        full = np.where(base[:, None, :] == HW, n * HW, full)
        self.idx = Tensor(full.reshape(-1).astype(np.int32))
        self.cin, self.cout, self.kk, self.n, self.ho, self.wo, self.pad = cin, cout, kk, n, ho, wo, pad

    def construct(self, x):
        flat = x.reshape(self.cin, -1)
        if self.pad:
            flat = ops.concat((flat, ops.zeros((self.cin, 1), flat.dtype)), 1)
        cols = ops.gather(flat, self.idx, 1).reshape(self.cin * self.kk, -1)
        out = ops.matmul(self.weight.reshape(self.cout, -1), cols) + self.bias.reshape(-1, 1)
        return out.reshape(self.cout, self.n, self.ho, self.wo)


class NetCNHW(nn.Cell):
    def __init__(self, ref):
        super().__init__()
        c = [m for m in ref.cells_and_names() if type(m[1]).__name__ == "ConvCL"]
        d = [m for m in ref.cells_and_names() if type(m[1]).__name__ == "Dense"]
        self.c1 = ConvCNHW(1, 32, 3, 1, (28, 28), N, c[0][1])
        self.c2 = ConvCNHW(32, 64, 3, 1, (14, 14), N, c[1][1])
        self.p = nn.MaxPool2d(2, 2)
        self.r = nn.ReLU()
        self.d1 = nn.Dense(3136, 128)
        self.d2 = nn.Dense(128, 10)
        for mine, theirs in ((self.d1, d[0][1]), (self.d2, d[1][1])):
            mine.weight.set_data(Tensor(theirs.weight.asnumpy()))
            mine.bias.set_data(Tensor(theirs.bias.asnumpy()))

    def construct(self, x):  # x NCHW with C=1 -> CNHW is a reshape
        x = x.reshape(1, x.shape[0], 28, 28)
        x = self.p(self.r(self.c1(x)))
        x = self.p(self.r(self.c2(x)))
        x = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)
        return self.d2(self.r(self.d1(x)))


class L(nn.Cell):
    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x, y):
        return ops.cross_entropy(self.net(x), y, reduction="sum")


x = Tensor(rng.standard_normal((N, 1, 28, 28)).astype(np.float32))
y = Tensor(rng.integers(0, 10, N).astype(np.int32))
ref = cnn.CNN(cnn.DEFAULT_CNN, (1, 28, 28), 10, 0)
ref.set_train(True)
new = NetCNHW(ref)
new.set_train(True)


def mk(net):
    g = ms.value_and_grad(L(net), None, net.trainable_params())

    def step(a, b):
        return g(a, b)

    j = ms.jit(step)

    def run():
        loss, gr = j(x, y)
        loss.asnumpy()
        [q.asnumpy() for q in gr]
        return loss, gr

    return run


A, B = mk(new), mk(ref)
la, ga = A()
lb, gb = B()
print(
    "loss",
    la.asnumpy(),
    lb.asnumpy(),
    "grad max diff",
    [float(np.abs(p.asnumpy() - q.asnumpy()).max()) for p, q in zip(ga, gb)],
)
ta, tb = [], []
for _ in range(15):
    for f, acc in ((A, ta), (B, tb)):
        for _ in range(3):
            t = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t)
print(f"CNHW {statistics.median(ta) * 1e3:.1f} ms   current {statistics.median(tb) * 1e3:.1f} ms")
