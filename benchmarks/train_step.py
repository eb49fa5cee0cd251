"""Training-step time of the default CNN on MNIST-5k batches: OpenMindSpore (MindSpore, CPU) vs the
same model, optimizer and batch in PyTorch on CPU, measured in the same run.

    python benchmarks/train_step.py [--steps 30] [--batch 64]

Goal: ours within 2x of PyTorch (ratio = ours / torch median step time).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _util import emit, timeit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    from openmindspore.train import Trainer, config_from_dict

    cfg = config_from_dict(
        {
            "dataset": "mnist5k",
            "model": {"name": "cnn"},
            "batch_size": args.batch,
            "steps": 10_000,
            "optimizer": {"name": "adam", "lr": 1e-3},
        }
    )
    tr = Trainer(cfg)
    ours = timeit(tr.train_step, args.steps, warmup=3)

    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = tr.data
    rng = np.random.default_rng(0)

    def torch_step() -> None:
        idx = rng.choice(len(data.x_train), args.batch, replace=False)
        x, y = torch.from_numpy(data.x_train[idx]), torch.from_numpy(data.y_train[idx])
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    ref = timeit(torch_step, args.steps, warmup=3)
    ms_med, pt_med = statistics.median(ours), statistics.median(ref)
    emit(
        {
            "bench": "train_step",
            "model": "default CNN (conv32-pool-conv64-pool-dense128)",
            "batch": args.batch,
            "openmindspore_ms": round(ms_med * 1e3, 1),
            "pytorch_ms": round(pt_med * 1e3, 1),
            "ratio_ours_over_torch": round(ms_med / pt_med, 2),
            "torch_threads": torch.get_num_threads(),
            "samples_per_s": round(args.batch / ms_med, 1),
        }
    )


if __name__ == "__main__":
    main()
