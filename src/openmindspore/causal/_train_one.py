"""Train one ablation cell in a fresh process: a TrainConfig as JSON on stdin -> one JSON line on stdout.

Each cell runs in its own interpreter so that no MindSpore state (compiled graphs, allocator,
a crash) carries over from one cell to the next."""
from __future__ import annotations

import json
import os
import sys
import time

__all__ = ["main"]


def main() -> int:
    os.environ.setdefault("GLOG_v", "3")
    from openmindspore.train import TrainConfig, train

    cfg = json.loads(sys.stdin.read())
    t0 = time.perf_counter()
    summary = train(TrainConfig.model_validate(cfg), out_dir=None, quiet=True)
    out = {"val": {"accuracy": float(summary["val"]["accuracy"]), "loss": float(summary["val"]["loss"])},
           "test": {"accuracy": float(summary["eval"]["accuracy"]), "loss": float(summary["eval"]["loss"])},
           "train": {"final_loss": float(summary.get("final_loss", float("nan"))),
                     "step_time_s": summary["step_time_s"]["median"], "seconds": time.perf_counter() - t0}}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
