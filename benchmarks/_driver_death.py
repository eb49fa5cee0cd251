"""Driver death for benchmarks/recovery.py: ``oms train`` SIGKILLed at a step, then ``oms train --resume``.

One JSON line per snapshot store: the step resumed from, its source (holder snapshot or disk checkpoint),
the steps lost, and the resume time (from starting ``--resume`` to its first completed step, read from
``metrics.jsonl``), with the load average.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _util import emit, oms_json

ROOT = Path(__file__).resolve().parents[1]


def _rows(run: Path) -> list[dict]:
    p = run / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []


def _last_step(run: Path) -> int:
    rows = _rows(run)
    return rows[-1]["step"] if rows else 0


def driver_death(tmp: Path, store: str, kill_at: int) -> None:
    cfg = tmp / "driver_cfg.yaml"
    cfg.write_text(
        "dataset: mnist5k\nmodel: {name: cnn}\noptimizer: {name: adam, lr: 0.002}\nbatch_size: 64\n"
        f"steps: {kill_at + 40}\nseed: 0\nlog_every: 1\ncheckpoint_every: 40\n"
    )
    run = tmp / f"driver_{store}"
    oms = Path(sys.executable).parent / "oms"
    cmd = [str(oms), "train", str(cfg), "--out", str(run), "--workers", "2", "--quiet", "--snapshot-store", store]
    err = tmp / f"driver_{store}.stderr"
    with open(err, "w") as f:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, start_new_session=True)
    try:
        while _last_step(run) < kill_at:
            if p.poll() is not None:
                raise SystemExit(f"the run ended before step {kill_at}:\n{err.read_text()[-2000:]}")
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)  # kill -9 of `oms train`, at once (no waiting for a snapshot)
        p.wait(timeout=30)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its workers and cluster; a holder runs in its own session
        except ProcessLookupError:
            pass
    killed_at = _last_step(run)
    t0 = time.time()
    s = oms_json("train", "--resume", str(run))
    first = next(r for r in _rows(run) if r["time"] > t0)
    emit(
        {
            "bench": "driver_death",
            "snapshot_store": store,
            "model": "default CNN",
            "workers": 2,
            "killed_after_step": killed_at,
            "resume_source": s["resume"]["source"],
            "resumed_from_step": s["resume"]["from_step"],
            "steps_lost": s["resume"]["steps_lost"],
            "resume_to_first_step_s": round(first["time"] - t0, 2),
            "checkpoint_every": 40,
            "load_avg": os.getloadavg()[0],
        }
    )
