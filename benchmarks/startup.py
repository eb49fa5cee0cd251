"""What one short `oms train` costs: wall seconds and CPU-seconds of every process it starts.

A 12-step, 2-worker run of a small CNN on digits (the shape of most elastic tests) is almost all start-up:
the driver, Ray's embedded cluster and the workers (MindSpore import, data, model, compiled step). The CPU
is counted in a cgroup (v1 ``cpuacct``, needs root) that the run and every process it starts belong to, so
it does not depend on what else runs; without such a cgroup the whole machine's CPU time is taken instead
(``cpu_scope: machine``: only meaningful on a quiet machine). ``--src DIR`` (repeatable) runs the same
command with each source tree first on ``PYTHONPATH`` (e.g. ``git archive`` of two revisions), interleaved
round by round, so a change is measured against its base in the same run::

    .venv/bin/python benchmarks/startup.py --rounds 3 --src /tmp/base/src --src src

One JSON line per run, then one summary per source tree (medians).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, load1

CONFIG = """\
dataset: digits
model:
  name: cnn
  layers:
    - {type: conv, channels: 8, kernel: 3}
    - {type: relu}
    - {type: maxpool, kernel: 2}
    - {type: dense, units: 32}
    - {type: relu}
optimizer: {name: adam, lr: 0.01}
batch_size: 32
steps: 12
seed: 3
checkpoint_every: 3
"""
CGROUP = "/sys/fs/cgroup/cpuacct"


def _machine_cpu_s() -> float:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    return sum(int(x) for x in fields[:3] + fields[5:7]) / os.sysconf("SC_CLK_TCK")


def run_once(src: str, cfg: Path, tag: str) -> dict:
    """One run of the command on ``cfg`` with ``src`` first on PYTHONPATH; its wall and CPU seconds."""
    group = f"{CGROUP}/oms_startup_{os.getpid()}_{tag}"
    try:
        os.makedirs(group, exist_ok=True)
        scope = "cgroup"
    except OSError:
        group, scope = "", "machine"
    out = cfg.parent / f"run-{tag}"
    cmd = [sys.executable, "-m", "openmindspore.cli.main", "train", str(cfg), "--out", str(out), "--json"]
    cmd += ["--workers", "2", "--spares", "0"]
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    wrap = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *cmd] if group else cmd
    before = _machine_cpu_s()
    t0 = time.perf_counter()
    p = subprocess.run(wrap, env=env, capture_output=True, text=True, start_new_session=True, timeout=600)
    wall = time.perf_counter() - t0
    if scope == "cgroup":
        cpu = int(Path(group, "cpuacct.usage").read_text()) / 1e9
        subprocess.run(["sh", "-c", f"for p in $(cat {group}/cgroup.procs); do kill -9 $p; done"], check=False)
        time.sleep(0.5)
        os.rmdir(group)
    else:
        cpu = _machine_cpu_s() - before
    if p.returncode != 0:
        sys.exit(f"the run with {src} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return {"src": src, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_scope": scope, "load1": load1()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", action="append", help="a source tree (its src/ folder); repeatable (default: src)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    srcs = [str(Path(s).resolve()) for s in (a.src or ["src"])]
    rows: dict[str, list[dict]] = {s: [] for s in srcs}
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d, "cfg.yaml")
        cfg.write_text(CONFIG)
        for r in range(a.rounds):
            for i, s in enumerate(srcs):
                row = {"bench": "startup", "round": r, **run_once(s, cfg, f"{r}_{i}")}
                rows[s].append(row)
                emit(row)
    for s, rs in rows.items():
        emit(
            {
                "bench": "startup_summary",
                "src": s,
                "runs": len(rs),
                "median_wall_s": round(statistics.median(x["wall_s"] for x in rs), 2),
                "median_cpu_s": round(statistics.median(x["cpu_s"] for x in rs), 2),
                "load1_max": max(x["load1"] for x in rs),
            }
        )


if __name__ == "__main__":
    main()
