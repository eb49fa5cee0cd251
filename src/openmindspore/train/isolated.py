"""Train one config in a fresh interpreter: what searches and ablations run for each candidate.

MindSpore keeps state per process (compiled graphs, allocator pools) and, after several trainings in
one process, has been seen to crash (segfault or ``RuntimeError: Unknown Error!`` on MindSpore 2.10
CPU). A candidate trained in its own process cannot take the caller down, and a crash becomes a
retry, then a failed trial with its error, instead of a dead search.

``python -m openmindspore.train.isolated`` reads a ``TrainConfig`` as JSON on stdin and prints one
JSON line of metrics on stdout; :func:`train_isolated` drives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

__all__ = ["train_isolated", "main"]


def train_isolated(
    config: dict[str, Any], retries: int = 1, timeout_s: float = 7200.0, module: str = "openmindspore.train.isolated"
) -> dict[str, Any]:
    """``{"status": "ok", "metrics": {...}, "attempts", "duration_s"}`` or ``{"status": "failed", "error"}``.

    ``metrics``: ``val``/``test`` ``{"accuracy", "loss"}`` and ``train`` ``{"final_loss", "step_time_s",
    "seconds"}``. A process that crashes or times out is retried ``retries`` times. ``module`` is the child
    run as ``python -m module`` (default: this one); another child (e.g. ``openmindspore.active._round``,
    which also returns predictions) follows the same contract: JSON on stdin, its last JSON line on stdout,
    exit 2 for a user error.
    """
    env = {**os.environ, "GLOG_v": "3"}
    t0 = time.perf_counter()
    attempts, err = 0, ""
    for _ in range(1 + int(retries)):
        attempts += 1
        try:
            proc = subprocess.run(
                [sys.executable, "-m", module],
                input=json.dumps(config),
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            err = f"timed out after {timeout_s:.0f} s"
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode == 0 and lines:
            return {
                "status": "ok",
                "metrics": json.loads(lines[-1]),
                "attempts": attempts,
                "duration_s": time.perf_counter() - t0,
            }
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and "[WARNING]" not in ln]
        err = f"exit {proc.returncode}: {tail[-1] if tail else 'no output'}"
        if proc.returncode == 2:  # a user error (bad config): retrying cannot help
            break
    return {
        "status": "failed",
        "metrics": {},
        "error": err,
        "attempts": attempts,
        "duration_s": time.perf_counter() - t0,
    }


def main() -> int:
    os.environ.setdefault("GLOG_v", "3")
    from openmindspore.errors import OMSError
    from openmindspore.train import TrainConfig, train

    t0 = time.perf_counter()
    try:
        cfg = TrainConfig.model_validate(json.loads(sys.stdin.read()))
        summary = train(cfg, out_dir=None, quiet=True)
    except (OMSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = {
        "val": {"accuracy": float(summary["val"]["accuracy"]), "loss": float(summary["val"]["loss"])},
        "test": {"accuracy": float(summary["eval"]["accuracy"]), "loss": float(summary["eval"]["loss"])},
        "train": {
            "final_loss": float(summary.get("final_loss", float("nan"))),
            "step_time_s": summary["step_time_s"]["median"],
            "seconds": time.perf_counter() - t0,
        },
    }
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
