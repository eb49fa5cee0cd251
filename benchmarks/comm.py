"""Collective backends for elastic data-parallel training, in one run.

    python benchmarks/comm.py [--only bandwidth|pieces|scaling|ceiling|recovery] [--reps 5] [--steps 40] [--kills 3]
                              [--kill-gap 10]

* bandwidth: in-place all-reduce of a float32 buffer, 2 processes on this node, 1 KB - 64 MB, for the
  shared-memory backend (``shm``, 1 MiB pieces by default, plus other piece sizes at 42 MB) and for
  MindSpore's MCCL; and whether both backends give bitwise the same sums (a fixed random input per rank).
* scaling: median step time of ``oms train`` with 1 worker vs 2 workers (shm, mccl) on the 10.6M-parameter
  MLP and on the default CNN; efficiency = throughput speed-up / 2 over 1 worker with the same per-worker
  share of the machine (1 thread, pinned to one core: each of the 2 workers gets one of the 2 cores).
  Strong scaling (the same global batch of 64, split) and weak scaling (64 per worker, Horovod's measure);
  the speed-up over 1 worker with every thread, 2 workers without pinning and weak scaling with the full
  (unsharded) optimizer update are reported too, and every efficiency also from the wall time per step over
  the second half of the run (``efficiency_steady_wall``: snapshots and the driver included).
* ceiling: the scaling that no collective can beat on this machine: the same training step (1 thread, pinned,
  no engine, no exchange) in one process alone vs in two processes at once, one per core; efficiency =
  time alone / time of the pair (each process does the 1-worker work: weak scaling with free communication).
* recovery: 2 workers, SIGKILL of rank 1 at several steps (``--kill-gap`` apart); failure -> first completed step
  after it with survivors kept (shm), survivors restarted (shm ``--restart-survivors``) and MCCL (standby group).

One JSON line per result (see benchmarks/_util.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from _util import emit, oms_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MLP = "{name: mlp, hidden: [4096, 1792]}"  # 784-4096-1792-10: 10,579,210 parameters = 42.3 MB of float32
MLP_BYTES = 10_579_210 * 4
SIZES = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, MLP_BYTES, 64 << 20]


def _env() -> dict[str, str]:
    return dict(os.environ, GLOG_v="3", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_allreduce(
    backend: str,
    sizes: list[int],
    reps: int,
    check_out: Path | None = None,
    world: int = 2,
    chunk_mb: float = 1.0,
    timeout: float = 600,
) -> list[dict]:
    """Start ``world`` processes of benchmarks/_comm_worker.py (and MindSpore's scheduler for mccl);
    returns rank 0's JSON records."""
    env, procs = _env(), []
    try:
        if backend == "mccl":
            sched = subprocess.Popen(
                [sys.executable, "-m", "openmindspore.elastic._sched_main"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(sched)
            assert sched.stdout.readline().strip() == "ready"
            port = _free_port()
            sched.stdin.write(f"127.0.0.1 {port} {world}\n")
            sched.stdin.flush()
            env.update(MS_SCHED_HOST="127.0.0.1", MS_SCHED_PORT=str(port), MS_WORKER_NUM=str(world))
        group = uuid.uuid4().hex[:10]
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "_comm_worker.py"),
            "--backend",
            backend,
            "--world",
            str(world),
            "--group",
            group,
            "--sizes",
            ",".join(map(str, sizes)),
            "--reps",
            str(reps),
            "--chunk-mb",
            str(chunk_mb),
        ] + (["--check-out", str(check_out)] if check_out else [])
        workers = [
            subprocess.Popen(cmd + ["--rank", str(r)], env=env, stdout=subprocess.PIPE, text=True) for r in range(world)
        ]
        procs += workers
        outs = [w.communicate(timeout=timeout)[0] for w in workers]
        if any(w.returncode for w in workers):
            raise SystemExit(f"{backend} all-reduce workers failed: {[w.returncode for w in workers]}")
        return [json.loads(line) for out in outs for line in out.splitlines() if line.startswith("{")]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def bandwidth(tmp: Path, reps: int) -> None:
    res = {}
    for backend in ("shm", "mccl"):
        res[backend] = {r["bytes"]: r for r in run_allreduce(backend, SIZES, reps, check_out=tmp / f"check.{backend}")}
        for r in res[backend].values():
            emit(
                {
                    "bench": "allreduce",
                    "backend": backend,
                    "bytes": r["bytes"],
                    "median_ms": round(r["median_s"] * 1e3, 3),
                    "MB_per_s": round(r["MB_per_s"], 1),
                    "group_init_s": round(r["init_s"], 3),
                    "processes": 2,
                }
            )
    shm42, mccl42 = res["shm"][MLP_BYTES]["median_s"], res["mccl"][MLP_BYTES]["median_s"]
    same = all(
        json.loads((tmp / f"check.shm.{r}").read_text()) == json.loads((tmp / f"check.mccl.{r}").read_text())
        for r in range(2)
    )
    emit(
        {
            "bench": "allreduce_summary",
            "bytes": MLP_BYTES,
            "shm_ms": round(shm42 * 1e3, 2),
            "mccl_ms": round(mccl42 * 1e3, 2),
            "speedup_shm_over_mccl": round(mccl42 / shm42, 1),
            "bitwise_equal_shm_mccl_all_sizes": same,
        }
    )
    pieces(reps)


def pieces(reps: int, rounds: int = 3) -> None:
    """shm piece (bucket) size at 42 MB: rounds interleaved over the sizes, median of the rounds' medians."""
    sizes = (0.125, 0.25, 0.5, 1.0, 2.0, 8.0, 32.0)
    times: dict[float, list[float]] = {c: [] for c in sizes}
    for _ in range(rounds):
        for chunk in sizes:
            times[chunk].append(run_allreduce("shm", [MLP_BYTES], reps, chunk_mb=chunk)[0]["median_s"])
    for chunk in sizes:
        med = statistics.median(times[chunk])
        emit(
            {
                "bench": "allreduce_piece_size",
                "backend": "shm",
                "bytes": MLP_BYTES,
                "piece_mb": chunk,
                "median_ms": round(med * 1e3, 2),
                "rounds_ms": [round(t * 1e3, 1) for t in times[chunk]],
                "MB_per_s": round(MLP_BYTES / med / 1e6, 1),
            }
        )


def _config(tmp: Path, steps: int, model: str, batch: int = 64) -> Path:
    p = tmp / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    p.write_text(
        f"dataset: mnist5k\nmodel: {model}\noptimizer: {{name: adam, lr: 0.002}}\n"
        f"batch_size: {batch}\nsteps: {steps}\nseed: 0\nlog_every: 1\ncheckpoint_every: 1000\n"
    )
    return p


_oms = oms_json


def _steady_step_s(summary: dict) -> float:
    """Wall time per step over the second half of a run (from its metrics.jsonl): unlike the median step
    time it includes everything between steps (snapshots, the driver), past the start-up (warm spares
    start beside the first steps)."""
    rows = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    t = [r["time"] for r in rows if "loss" in r][len(rows) // 2 :]
    return (t[-1] - t[0]) / (len(t) - 1)


def scaling(tmp: Path) -> None:
    # enough steps that the median is the steady state: the warm spares start beside the first seconds of
    # training (MindSpore import, data, compile) and slow those steps
    for name, model, steps in (("MLP 784-4096-1792-10 (10.6M params)", MLP, 300), ("default CNN", "{name: cnn}", 500)):
        cfg = _config(tmp, steps, model)
        # the 2 workers get one core (thread) each: "1 worker, 1 thread" is the same per-worker share, the
        # baseline of scaling efficiency; "1 worker, all threads" is what one process gets from the machine
        weak = _config(tmp, steps, model, batch=128)  # weak scaling (Horovod's measure): 64 per worker
        plan = {
            "1 worker, 1 thread": (cfg, "--workers", "1", "--threads", "1"),
            "1 worker, all threads": (cfg, "--workers", "1"),
            "2 workers shm": (cfg, "--workers", "2", "--comm", "shm"),
            "2 workers mccl": (cfg, "--workers", "2", "--comm", "mccl"),
            "2 workers shm, not pinned": (cfg, "--workers", "2", "--no-pin"),
            "2 workers shm, weak: 64 per worker": (weak, "--workers", "2"),
            "2 workers shm, weak, full update (--no-shard-optimizer)": (weak, "--workers", "2", "--no-shard-optimizer"),
        }
        runs = {}
        for i, (key, (conf, *args)) in enumerate(plan.items()):
            out = tmp / f"scaling-{steps}-{i}"
            runs[key] = {**_oms("train", str(conf), "--out", str(out), *args), "run_dir": str(out)}
        t1 = runs["1 worker, 1 thread"]["step_time_s"]["median"]
        t_all = runs["1 worker, all threads"]["step_time_s"]["median"]
        w1 = _steady_step_s(runs["1 worker, 1 thread"])
        for key, s in runs.items():
            t, batch = s["step_time_s"]["median"], 128 if "weak" in key else 64
            speedup = (batch / t) / (64 / t1)  # throughput (samples/s) over 1 worker's
            wall = _steady_step_s(s)
            emit(
                {
                    "bench": "scaling",
                    "model": name,
                    "run": key,
                    "global_batch": batch,
                    "median_step_s": round(t, 3),
                    "steady_wall_per_step_s": round(wall, 4),
                    "efficiency_steady_wall": round((batch / wall) / (64 / w1) / s["workers"], 2),
                    "median_comm_s": s.get("comm_s", {}).get("median"),
                    "samples_per_s": round(batch / t, 1),
                    "threads_per_worker": s.get("elastic", {}).get("threads"),
                    "worker_cores": s.get("worker_cores"),
                    "phases_s": s.get("phases_s"),
                    "speedup_over_1": round(speedup, 2),
                    "efficiency": round(speedup / s["workers"], 2),
                    "speedup_over_1_all_threads": round((batch / t) / (64 / t_all), 2),
                }
            )


def ceiling(seconds: float = 15.0, rounds: int = 3) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "_ceiling_worker.py"), "--seconds", str(seconds)]
    for model in ("mlp", "cnn"):

        def run(cpus: list[int], model: str = model) -> float:
            procs = [
                subprocess.Popen([*cmd, "--cpu", str(c), "--model", model], stdout=subprocess.PIPE, text=True)
                for c in cpus
            ]
            rs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            return max(r["compute_ms"] + r["update_ms"] for r in rs)  # the pair steps at the slower one's pace

        # alone and pair interleaved: this machine's speed drifts by tens of percent over minutes
        alone, pair = zip(*[(run([0]), run([0, 1])) for _ in range(rounds)])
        emit(
            {
                "bench": "ceiling",
                "model": model,
                "batch_per_process": 64,
                "alone_ms": alone,
                "pair_ms": pair,
                "efficiency_with_free_comm": round(statistics.median(alone) / statistics.median(pair), 2),
                "efficiency_per_round": [round(a / b, 2) for a, b in zip(alone, pair)],
            }
        )


def recovery(tmp: Path, steps: int, kills: int, only: list[str] | None = None, gap: int = 10) -> None:
    cfg = _config(tmp, steps, "{name: cnn}")
    kill_steps = [8 + gap * i for i in range(kills) if 8 + gap * i < steps]
    faults = [a for s in kill_steps for a in ("--kill-worker-at", f"{s}:1")]
    modes = {
        "survivors kept (shm)": ["--comm", "shm"],
        "survivors restarted (shm --restart-survivors)": ["--comm", "shm", "--restart-survivors"],
        "processes replaced (mccl, standby group)": ["--comm", "mccl"],
    }
    med = {}
    for key, (mode, extra) in zip(("keep", "restart", "mccl"), modes.items()):
        if only and key not in only:
            continue
        s = _oms("train", str(cfg), "--out", str(tmp / f"r-{extra[1]}-{len(extra)}"), "--workers", "2", *faults, *extra)
        rec = [r for r in s["recoveries"] if r.get("recover_s") is not None]
        med[mode] = statistics.median(r["recover_s"] for r in rec)
        emit(
            {
                "bench": "recovery",
                "mode": mode,
                "model": "default CNN",
                "workers": 2,
                "recover_s": [r["recover_s"] for r in rec],
                "median_recover_s": med[mode],
                "steps_lost": [r["steps_lost"] for r in rec],
                "survivors_kept": [r.get("survivors_kept") for r in rec],
                "phases_s": [r.get("phases_s") for r in rec],
                "median_step_s": round(s["step_time_s"]["median"], 3),
            }
        )
    emit({"bench": "recovery_summary", **{k: round(v, 3) for k, v in med.items()}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["bandwidth", "pieces", "scaling", "ceiling", "recovery"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument(
        "--kill-gap",
        type=int,
        default=10,
        help="recovery: steps between kills (the first during step 8); a gap shorter than a spare "
        "process's start-up (~15 s) exhausts the warm spares",
    )
    ap.add_argument("--modes", default="keep,restart,mccl", help="recovery modes to run (comma-separated)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="oms-comm-"))
    try:
        if args.only in (None, "bandwidth"):
            bandwidth(tmp, args.reps)
        if args.only == "pieces":
            pieces(args.reps)
        if args.only in (None, "scaling"):
            scaling(tmp)
        if args.only in (None, "ceiling"):
            ceiling()
        if args.only in (None, "recovery"):
            recovery(tmp, args.steps, args.kills, args.modes.split(","), args.kill_gap)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
