"""Cost of observability on the training step: the same trainer stepping with and without logging every
step to jsonl + TensorBoard + MLflow, in alternating blocks of the same run (so drift and load hit both).

    python benchmarks/observe.py [--log-every 10] [--blocks 10] [--steps 20] [--loggers tensorboard,mlflow]

What "with" does per logged step (every ``--log-every``; the config's default is 10, 1 is the worst case):
the row appended to ``metrics.jsonl`` and queued for the trackers, whose background thread writes the
TensorBoard event and the MLflow metric batch (competing for the CPU and the GIL during the next steps).
Goal: overhead = median step with / median step without - 1 <= 2 %. Also reported: the process's CPU time
per step (all threads, the block's tracker writes flushed and charged to it), and the logging work measured
alone (``log_cpu_ms_per_logged_step``: CPU time of logging calls and the trackers' writes, no training)
over ``log_every`` steps relative to a step's CPU time (``overhead_isolated``): on a loaded machine the
with/without difference is dominated by noise (an A/A check, ``--loggers ''``, shows the same spread).
One JSON line, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _util import emit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=10, help="alternating with/without blocks, each")
    ap.add_argument("--steps", type=int, default=20, help="steps per block")
    ap.add_argument("--loggers", default="tensorboard,mlflow")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()

    from openmindspore.train import RunDir, Trainer, config_from_dict
    from openmindspore.train.observe import RunObserver

    loggers = [n for n in args.loggers.split(",") if n]
    raw = {
        "dataset": args.dataset,
        "model": {"name": "cnn"},
        "batch_size": 64,
        "steps": 100_000,
        "log_every": args.log_every,
    }
    cfg = config_from_dict({**raw, "logger": loggers})
    trainer = Trainer(cfg)
    for _ in range(5):  # compile and warm up
        trainer.train_step()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run"
        obs = RunObserver.open(cfg, path)
        run = RunDir.create(path, cfg.model_dump(mode="json"))
        obs.start()
        times: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, float] = {False: 0.0, True: 0.0}  # process CPU seconds (all threads) per mode
        for block in range(2 * args.blocks):
            on = (block % 2 == 1) if (block // 2) % 2 == 0 else (block % 2 == 0)  # ABBA order
            c0 = time.process_time()
            for _ in range(args.steps):
                t0 = time.perf_counter()
                loss = trainer.train_step()
                if on and trainer.step % args.log_every == 0:
                    row = {
                        "step": trainer.step,
                        "loss": loss,
                        "lr": trainer.lr_at(trainer.step - 1),
                        "time": time.time(),
                    }
                    obs.metrics(run, row)
                times[on].append(time.perf_counter() - t0)
            if on:
                obs.trackers.flush()  # the block's tracker writes are charged to it
            cpu[on] += time.process_time() - c0
        t_flush = time.perf_counter()
        obs.trackers.flush()
        flush_s = time.perf_counter() - t_flush
        # the logging work alone: CPU seconds (every thread) per logged step, the trackers' writes included
        n_calls, c0 = 200, time.process_time()
        for i in range(n_calls):
            obs.metrics(run, {"step": 10**6 + i, "loss": 0.5, "lr": 1e-3, "time": time.time()})
        obs.trackers.flush()
        log_cpu = (time.process_time() - c0) / n_calls
        obs.close("completed")
    off, on_ = statistics.median(times[False]), statistics.median(times[True])
    mean_off, mean_on = statistics.fmean(times[False]), statistics.fmean(times[True])
    emit(
        {
            "bench": "observe_overhead",
            "loggers": ["jsonl", *loggers],
            "log_every": args.log_every,
            "steps_each": len(times[True]),
            "step_ms_without": round(off * 1000, 3),
            "step_ms_with": round(on_ * 1000, 3),
            "overhead_median": round(on_ / off - 1, 4),
            "overhead_mean": round(mean_on / mean_off - 1, 4),
            "backlog_flush_s": round(flush_s, 3),
            "cpu_ms_per_step_without": round(cpu[False] / len(times[False]) * 1000, 3),
            "cpu_ms_per_step_with": round(cpu[True] / len(times[True]) * 1000, 3),
            "overhead_cpu": round(cpu[True] / cpu[False] - 1, 4),
            "log_cpu_ms_per_logged_step": round(log_cpu * 1000, 4),
            # the isolated cost spread over log_every steps, relative to a step's CPU time without logging
            "overhead_isolated": round(log_cpu / args.log_every / (cpu[False] / len(times[False])), 5),
            "goal": 0.02,
            "met": on_ / off - 1 <= 0.02,
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }
    )


if __name__ == "__main__":
    main()
