"""One training process of ``comm.py --only ceiling``: pinned to one core, one thread, no engine and no
collective; prints the median forward+backward and optimizer-update times (ms) of the last 2/3 of
``--seconds`` of steps as one JSON line.

    python benchmarks/_ceiling_worker.py --cpu 0 --model mlp --batch 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

MODELS = {"mlp": {"name": "mlp", "hidden": [4096, 1792]}, "cnn": {"name": "cnn"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", type=int, required=True)
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=25.0)
    args = ap.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", GLOG_v="3")
    os.sched_setaffinity(0, {args.cpu})
    from openmindspore.train import Trainer, config_from_dict

    tr = Trainer(
        config_from_dict(
            {
                "dataset": "mnist5k",
                "model": MODELS[args.model],
                "batch_size": args.batch,
                "steps": 1_000_000,
                "optimizer": {"name": "adam", "lr": 1e-3},
            }
        )
    )
    os.sched_setaffinity(0, {args.cpu})  # threads MindSpore started meanwhile inherit it
    compute, update = [], []
    end = time.time() + args.seconds
    while time.time() < end:
        idx = tr.next_indices()
        t0 = time.perf_counter()
        _, grads = tr.compute_grads(idx)
        t1 = time.perf_counter()
        tr.apply_grads(grads, len(idx))
        compute.append(t1 - t0)
        update.append(time.perf_counter() - t1)
    skip = len(compute) // 3
    print(
        json.dumps(
            {
                "cpu": args.cpu,
                "steps": len(compute) - skip,
                "compute_ms": round(statistics.median(compute[skip:]) * 1e3, 2),
                "update_ms": round(statistics.median(update[skip:]) * 1e3, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
