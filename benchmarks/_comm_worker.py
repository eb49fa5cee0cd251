"""One rank of the all-reduce benchmark (started by benchmarks/comm.py; also used by tests).

    python benchmarks/_comm_worker.py --backend shm|mccl --rank R --world N --group G --sizes 1024,...
        [--reps 5] [--check-out FILE]

mccl: the MindSpore cluster variables (MS_SCHED_HOST/PORT, MS_WORKER_NUM, MS_ROLE) come from the
environment; the rank is MindSpore's. Prints one JSON line per size on rank 0: median seconds of an
in-place all-reduce of a float32 buffer of that many bytes. ``--check-out`` also writes every rank's
result of a fixed random input (seeded by rank) per size, for bitwise comparisons between backends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time

import numpy as np

os.environ.setdefault("GLOG_v", "3")


def make_collective(backend: str, group: str, rank: int, world: int, chunk_mb: float):
    if backend == "shm":
        from openmindspore.elastic.comm import ShmCollective

        return ShmCollective(group, rank, world, timeout=120, chunk_bytes=int(chunk_mb * (1 << 20)))
    os.environ.update(MS_ROLE="MS_WORKER", MS_NODE_ID=str(rank))
    from mindspore.communication import init

    from openmindspore.elastic.comm import MCCLCollective

    t = time.perf_counter()
    init()
    c = MCCLCollective()
    c.init_s = time.perf_counter() - t
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=["shm", "mccl"])
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--group", default="bench")
    ap.add_argument("--sizes", required=True, help="comma-separated buffer sizes in bytes")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--chunk-mb", type=float, default=1.0)
    ap.add_argument("--check-out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    c = make_collective(a.backend, a.group, a.rank, a.world, a.chunk_mb)
    init_s = getattr(c, "init_s", time.perf_counter() - t0)
    checks = {}
    for size in (int(s) for s in a.sizes.split(",")):
        n = max(1, size // 4)
        rng = np.random.default_rng(1000 + c.rank)
        x = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n)).astype(np.float32)
        buf = x.copy()
        c.allreduce_(buf)  # warm-up, and the result checked across backends
        if a.check_out:
            checks[str(size)] = buf.tobytes().hex() if n <= 4096 else hashlib.sha256(buf.tobytes()).hexdigest()
        times = []
        for _ in range(a.reps):
            buf[:] = x
            c.barrier()
            t = time.perf_counter()
            c.allreduce_(buf)
            times.append(time.perf_counter() - t)
        if c.rank == 0:
            med = statistics.median(times)
            print(
                json.dumps(
                    {
                        "backend": a.backend,
                        "bytes": n * 4,
                        "median_s": med,
                        "min_s": min(times),
                        "MB_per_s": n * 4 / med / 1e6,
                        "init_s": init_s,
                        "world": a.world,
                    }
                ),
                flush=True,
            )
    if a.check_out:
        with open(f"{a.check_out}.{c.rank}", "w") as f:
            json.dump(checks, f)
    c.barrier()
    c.close()


if __name__ == "__main__":
    main()
