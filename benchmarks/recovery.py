"""Recovery of OpenMindSpore elastic training vs the plain-MindSpore baseline, in one run.

    python benchmarks/recovery.py [--steps 40] [--kills 3]

* ours: ``oms train --workers 2`` with SIGKILLs of rank 1 injected at several steps; per recovery the
  time from the failure to the first completed step after it, and the steps lost.
* baseline: the same model/data/optimizer under ``msrun`` (MCCL, checkpoint every 5 steps); rank 1 is
  SIGKILLed; the job fails, is relaunched and resumes from its last disk checkpoint. Time from the kill
  to the first completed step of the relaunched job; steps lost = steps redone.
* snapshot overhead for a ~10M-parameter MLP, with the snapshot store ``holder`` (default) and ``ray`` in
  the same run, each every step and ``--snapshot-every auto``: measured within each training run, blocks
  of steps with and without snapshots alternating (:mod:`_snapshot_overhead`), and across runs; and
  2-worker vs 1-worker throughput.
* driver death (``--only driver``): a 2-worker run whose driver (``oms train``) is SIGKILLed at step 100,
  then ``oms train --resume``: steps lost and resume time (command to the first completed step), from the
  holder's snapshot (``--snapshot-store holder``) vs from the disk checkpoint (``ray``: today's), checkpoint
  every 40 steps.

One JSON line per result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, oms_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _config(
    tmp: Path,
    steps: int,
    model: str = "{name: cnn}",
    dataset: str = "mnist5k",
    batch: int = 64,
    checkpoint_every: int = 5,
) -> Path:
    p = tmp / f"cfg-{abs(hash((steps, model, dataset, batch, checkpoint_every)))}.yaml"
    p.write_text(
        f"dataset: {dataset}\nmodel: {model}\noptimizer: {{name: adam, lr: 0.002}}\n"
        f"batch_size: {batch}\nsteps: {steps}\nseed: 0\nlog_every: 1\ncheckpoint_every: {checkpoint_every}\n"
    )
    return p


_oms = oms_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _msrun(cfg: Path, run: Path, log: Path, kill_at: int, timeout: float) -> int:
    cmd = [
        str(BIN / "msrun"),
        "--worker_num=2",
        "--local_worker_num=2",
        f"--master_port={_free_port()}",
        f"--log_dir={run}/msrun_logs",
        "--join=True",
        str(ROOT / "benchmarks" / "_msrun_worker.py"),
        "--config",
        str(cfg),
        "--run",
        str(run),
        "--log",
        str(log),
        "--kill-at",
        str(kill_at),
    ]
    env = dict(os.environ, GLOG_v="3", PATH=f"{BIN}:{os.environ.get('PATH', '')}")  # msrun runs `python`
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass


def baseline(tmp: Path, steps: int, kill_at: int) -> dict:
    cfg, run, log = _config(tmp, steps), tmp / "msrun_run", tmp / "msrun.log"
    _msrun(cfg, run, log, kill_at, timeout=600)  # fails at the kill
    t_exit = time.time()
    _msrun(cfg, run, log, 0, timeout=1800)  # relaunch, resume from the last checkpoint
    lines = [ln.split() for ln in log.read_text().splitlines()]
    t_kill = next(float(t) for kind, _, t in lines if kind == "kill")
    after = [(int(s), float(t)) for kind, s, t in lines if kind == "step" and float(t) > t_exit]
    kill_step = next(int(s) for kind, s, _ in lines if kind == "kill")
    done_before = kill_step - 1  # rank 1 reached step k only after step k-1 completed everywhere
    first_step, t_first = after[0]
    return {"recover_s": t_first - t_kill, "detect_s": t_exit - t_kill, "steps_lost": done_before - (first_step - 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--only", choices=["recovery", "snapshot", "scaling", "driver"], help="run one part only")
    ap.add_argument("--snapshot-steps", type=int, default=380, help="snapshot overhead: steps per run")
    ap.add_argument("--rounds", type=int, default=2, help="snapshot overhead: interleaved rounds")
    ap.add_argument("--block", type=int, default=20, help="snapshot overhead: steps per block (--snapshot-ab)")
    ap.add_argument("--stores", default="holder,ray", help="snapshot overhead: the stores compared")
    ap.add_argument("--kill-driver-at", type=int, default=100, help="driver death: the step it is killed at")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="oms-recovery-"))
    try:
        if args.only in (None, "recovery"):
            _recovery(tmp, args)
        if args.only in (None, "snapshot"):
            from _snapshot_overhead import snapshot_overhead

            stores = tuple(args.stores.split(","))
            snapshot_overhead(tmp, _config, args.snapshot_steps, args.rounds, args.block, stores)
        if args.only in (None, "scaling"):
            _scaling(tmp)
        if args.only in (None, "driver"):
            from _driver_death import driver_death

            for store in ("holder", "ray"):
                driver_death(tmp, store, args.kill_driver_at)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recovery(tmp: Path, args: argparse.Namespace) -> None:
    cfg = _config(tmp, args.steps)
    kill_steps = [8 + 10 * i for i in range(args.kills) if 8 + 10 * i < args.steps]
    kills = [a for s in kill_steps for a in ("--kill-worker-at", f"{s}:1")]
    ours = _oms("train", str(cfg), "--out", str(tmp / "ours"), "--workers", "2", *kills)
    rec = ours["recoveries"]
    emit(
        {
            "bench": "recovery",
            "system": "openmindspore",
            "model": "default CNN",
            "workers": 2,
            "recover_s": [r["recover_s"] for r in rec],
            "median_recover_s": statistics.median(r["recover_s"] for r in rec),
            "detect_s": [r["detect_s"] for r in rec],
            "steps_lost": [r["steps_lost"] for r in rec],
            "standby_group": [r.get("standby_group") for r in rec],
            "step_time_s": ours["step_time_s"]["median"],
        }
    )
    if not args.skip_baseline:
        b = baseline(tmp, args.steps, kill_at=kill_steps[0])
        emit(
            {
                "bench": "recovery",
                "system": "msrun baseline (checkpoint every 5 steps, relaunch)",
                "model": "default CNN",
                "workers": 2,
                **{k: round(v, 3) for k, v in b.items()},
            }
        )
        emit(
            {
                "bench": "recovery",
                "speedup_vs_baseline": round(b["recover_s"] / statistics.median(r["recover_s"] for r in rec), 1),
            }
        )


def _scaling(tmp: Path) -> None:
    """2 workers vs 1 worker throughput, same global batch."""
    cfgt = _config(tmp, 20)
    one = _oms("train", str(cfgt), "--out", str(tmp / "w1"), "--workers", "1")
    two = _oms("train", str(cfgt), "--out", str(tmp / "w2"), "--workers", "2")
    t1, t2 = one["step_time_s"]["median"], two["step_time_s"]["median"]
    emit(
        {
            "bench": "scaling",
            "model": "default CNN",
            "global_batch": 64,
            "samples_per_s_1_worker": round(64 / t1, 1),
            "samples_per_s_2_workers": round(64 / t2, 1),
            "speedup_2_over_1": round(t1 / t2, 2),
        }
    )


if __name__ == "__main__":
    main()
