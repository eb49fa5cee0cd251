"""Ray vs openYuanrong (local mode) behind the engine seam, in one run.

    python benchmarks/engines.py [--tasks 1000] [--nb201-budget 200] [--cnn-budget 6]

Per engine: start time; 1,000 no-op tasks submitted one at a time (submit -> answer latency, p50/p99); an
actor call's p50; a 10 MB and a 100 MB array to an actor (put) and back (get); then the wall time of
``oms search --space nb201``, ``--space cnn`` and ``--space sklearn-classifier`` with ``--workers 2`` on
each engine, the engines alternating. Goals (issue 24): openYuanrong's dispatch latency <= Ray's; the cnn
search within 10 % of Ray. One JSON line per result, each with the load average (a figure taken above ~3
is labelled under load).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _util import emit, load1

BIN = Path(sys.executable).parent


def noop(x: int) -> int:
    return x


class Box:
    """An actor holding nothing: echo and array round trips."""

    def ping(self, x: int) -> int:
        return x

    def size(self, a: np.ndarray) -> int:
        return int(a.nbytes)

    def make(self, n: int) -> np.ndarray:
        return np.ones(n // 8)


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)) * 1e3, 3)


def micro(name: str, tasks: int) -> None:
    from openmindspore.engine import get_engine

    eng = get_engine(name)
    t = time.perf_counter()
    eng.start(None, num_cpus=2)
    emit({"engine": name, "metric": "start_s", "value": round(time.perf_counter() - t, 3), "load": load1()})
    try:
        for _ in range(20):  # warm the task workers
            eng.get(eng.submit(noop, 0), timeout=60)
        lat = []
        for i in range(tasks):
            t = time.perf_counter()
            eng.get(eng.submit(noop, i), timeout=60)
            lat.append(time.perf_counter() - t)
        emit({"engine": name, "metric": "task_ms", "p50": _pct(lat, 50), "p99": _pct(lat, 99), "load": load1()})
        box = eng.spawn(Box, name="box", concurrency=1)
        eng.get(eng.call(box, "ping", 0), timeout=60)
        lat = []
        for i in range(500):
            t = time.perf_counter()
            eng.get(eng.call(box, "ping", i), timeout=60)
            lat.append(time.perf_counter() - t)
        emit({"engine": name, "metric": "actor_call_ms", "p50": _pct(lat, 50), "p99": _pct(lat, 99), "load": load1()})
        for mb in (10, 100):
            a = np.ones(mb * 1024 * 1024 // 8)
            put = []
            get = []
            for _ in range(5):
                t = time.perf_counter()
                eng.get(eng.call(box, "size", a), timeout=120)
                put.append(time.perf_counter() - t)
                t = time.perf_counter()
                eng.get(eng.call(box, "make", a.nbytes), timeout=120)
                get.append(time.perf_counter() - t)
            emit(
                {
                    "engine": name,
                    "metric": f"array_{mb}mb_ms",
                    "put_p50": _pct(put, 50),
                    "get_p50": _pct(get, 50),
                    "load": load1(),
                }
            )
        eng.kill(box)
    finally:
        eng.shutdown()


def search_wall(name: str, space: str, budget: int, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(BIN / "oms"), "search", "--space", space, "--budget", str(budget), "--workers", "2"]
        cmd += ["--engine", name, "--out", str(Path(tmp) / "s"), *extra]
        load0 = load1()
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, GLOG_v="3"), timeout=3600)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        emit(
            {
                "engine": name,
                "metric": f"{space}_search_s",
                "budget": budget,
                "value": round(wall, 2),
                "load_before": load0,
                "load": load1(),
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--nb201-budget", type=int, default=200)
    ap.add_argument("--cnn-budget", type=int, default=6)
    ap.add_argument("--cnn-steps", type=int, default=100)
    ap.add_argument("--sklearn-budget", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1, help="times each search runs per engine (alternating)")
    args = ap.parse_args()
    for name in ("ray", "yuanrong"):  # each in its own process: a clean start, no shared state
        subprocess.run([sys.executable, __file__, "--micro", name, "--tasks", str(args.tasks)], check=True)
    for _ in range(args.rounds):
        for name in ("ray", "yuanrong"):
            search_wall(name, "nb201", args.nb201_budget, [])
        for name in ("yuanrong", "ray"):
            search_wall(name, "cnn", args.cnn_budget, ["--dataset", "digits", "--set", f"steps={args.cnn_steps}"])
        for name in ("ray", "yuanrong"):  # in-process scikit-learn trials: threads share the GIL in local mode
            search_wall(name, "sklearn-classifier", args.sklearn_budget, ["--dataset", "digits"])


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--micro":
        tasks = int(sys.argv[sys.argv.index("--tasks") + 1]) if "--tasks" in sys.argv else 1000
        micro(sys.argv[2], tasks)
    else:
        main()
