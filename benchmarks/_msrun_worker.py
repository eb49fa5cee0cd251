"""Plain-MindSpore baseline worker for benchmarks/recovery.py, launched by ``msrun``.

Static data parallelism as MindSpore users run it today: MCCL all-reduce of the gradients, rank 0
writes a disk checkpoint every K steps, and after a failure the whole job is relaunched and resumes from
the newest checkpoint. Uses the same model, data, sampler and optimizer as OpenMindSpore so that only
the recovery mechanism differs. Appends ``step time`` lines to ``--log``.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ckpt-every", type=int, default=5)
    ap.add_argument("--kill-at", type=int, default=0, help="rank 1 SIGKILLs itself during this step (1-based)")
    args = ap.parse_args()
    os.environ.setdefault("GLOG_v", "3")
    from mindspore import ops
    from mindspore.communication import get_group_size, get_rank, init

    from openmindspore.train import RunDir, Trainer, load_config

    init()
    rank, world = get_rank(), get_group_size()
    tr = Trainer(load_config(args.config))
    run = RunDir(args.run)
    resumed = run.latest_name() is not None
    if resumed:
        tr.load_state(run.load_latest())
    allreduce = ops.AllReduce(ops.ReduceOp.SUM)
    while tr.step < tr.total_steps:
        if args.kill_at and not resumed and rank == 1 and tr.step + 1 == args.kill_at:
            with open(args.log, "a") as f:
                f.write(f"kill {tr.step + 1} {time.time()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        idx = tr.next_indices()
        _, grads = tr.compute_grads(idx, world, rank)
        flat = allreduce(ops.cat([g.reshape(-1) for g in grads]))
        out, off = [], 0
        for g in grads:
            n = int(np.prod(g.shape))
            out.append(flat[off : off + n].reshape(g.shape))
            off += n
        tr.apply_grads(tuple(out), len(idx))
        if rank == 0:
            with open(args.log, "a") as f:
                f.write(f"step {tr.step} {time.time()}\n")
            if tr.step % args.ckpt_every == 0:
                run.save(tr.state())


if __name__ == "__main__":
    main()
