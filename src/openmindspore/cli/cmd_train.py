"""``oms train``: train a model from a YAML config, or resume a run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from openmindspore.cli._common import (
    add_command,
    add_engine_arg,
    add_log_level,
    apply_log_level,
    print_json,
    stdout_to_stderr,
)
from openmindspore.errors import ConfigError

EXAMPLES = """\
  oms train examples/mnist_cnn.yaml --out runs/mnist          # default CNN on MNIST-5k
  oms train examples/digits_mlp.yaml --max-steps 50 --json     # stop at step 50, print the summary
  oms train --resume runs/mnist                                # continue from the last checkpoint
  oms train --resume runs/mnist --max-steps 200                # ... up to step 200
  oms train examples/mnist_cnn.yaml --workers 2 --kill-worker-at 20:1   # elastic, one injected crash
  oms train examples/mnist_cnn.yaml --workers 2 --address auto         # join a running Ray cluster
  oms train examples/mnist_cnn.yaml --workers 2 --comm mccl            # MindSpore's collectives instead of shm
  cd myproject && oms train train.yaml --workers 2     # your nn.Cell (model.class_path) and files (dataset.format)
  oms train train.yaml --code-dir src/                  # import model.class_path from src/ (shipped to workers)
  oms train examples/yolos_synthetic.yaml --workers 2  # YOLOS detection (dataset format synthetic_detection|coco)
  oms train examples/digits_mlp.yaml --logger tensorboard,mlflow --log-level info   # trackers (docs/observability.md)
"""


def register(sub) -> None:
    p = add_command(sub, "train", "train a model from a YAML config (or resume a run)", EXAMPLES)
    p.add_argument("config", nargs="?", help="YAML config (dataset, model, optimizer, batch_size, epochs|steps, seed)")
    p.add_argument("--out", help="run directory (default: runs/<config name>-<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    p.add_argument("--max-steps", type=int, help="absolute step to stop at (the LR schedule keeps the planned total)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--json", action="store_true", help="print only the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--logger",
        metavar="NAMES",
        help="experiment trackers, comma-separated: jsonl (always on), tensorboard, mlflow (overrides the "
        "config's logger)",
    )
    add_log_level(p)
    p.add_argument(
        "--code-dir",
        action="append",
        metavar="DIR",
        help="folder holding the module of model.class_path, shipped to the workers (repeatable; default: "
        "the config file's folder or the current directory, whichever holds it)",
    )
    e = p.add_argument_group("elastic data-parallel training (Ray; see docs/distributed.md)")
    e.add_argument("--workers", type=int, help="worker processes (constant global batch; must divide batch_size)")
    e.add_argument("--min-workers", type=int, help="scale down to no fewer than this many workers (default 1)")
    e.add_argument(
        "--spares",
        type=int,
        help="warm standby processes for fast replacement (default: --workers, fitted to a cluster's free CPUs)",
    )
    e.add_argument(
        "--address",
        help="Ray cluster address (default: $RAY_ADDRESS, as `ray job submit` sets it, else an embedded local cluster)",
    )
    e.add_argument(
        "--snapshot-every",
        type=_snapshot_every,
        metavar="K|auto",
        help="in-memory snapshot every K steps; auto (default): every step unless copying the state "
        "costs more than 5%% of a step, then the smallest K within that (always 1 with mccl)",
    )
    e.add_argument(
        "--snapshot-store",
        choices=["holder", "ray", "yrds"],
        help="where in-memory snapshots live: holder (default: a process outside the driver, shared memory; "
        "survives a driver crash, --resume uses it), ray (driver-owned objects, lost with the driver), yrds "
        "(openYuanrong data system, optional extra)",
    )
    e.add_argument(
        "--snapshot-ab",
        type=int,
        metavar="B",
        help="benchmark: alternate blocks of B steps without and with snapshots; the summary's snapshot_ab "
        "compares them (the overhead measured within one run)",
    )
    e.add_argument("--checkpoint-every", type=int, help="disk checkpoint every K steps (default: config)")
    e.add_argument("--checkpoint-secs", type=float, help="also checkpoint when T seconds have passed")
    e.add_argument(
        "--hang-timeout",
        type=float,
        default=10.0,
        help="cap on the step deadline, seconds; the deadline is 5x the median step time, >= 1 s",
    )
    e.add_argument("--max-restarts", type=int, default=10, help="replacement processes allowed in the whole run")
    e.add_argument(
        "--rejoin-wait",
        type=float,
        default=30.0,
        help="seconds a recovery may wait for replacement processes before scaling down",
    )
    e.add_argument("--placement", choices=["PACK", "SPREAD"], default="PACK", help="placement-group strategy")
    e.add_argument(
        "--threads",
        type=int,
        help="CPU threads per worker on the embedded cluster (default: cores // workers; on a "
        "cluster each node's CPUs are divided among its workers)",
    )
    add_engine_arg(e, "the worker processes (yuanrong needs an openYuanrong cluster: --address or YR_SERVER_ADDRESS)")
    e.add_argument(
        "--comm",
        choices=["shm", "tcp", "mccl"],
        help="gradient all-reduce: shm (shared memory on one node, survivors kept on failure; default), "
        "tcp (shared memory within each node, TCP between nodes, survivors kept; default with --address) "
        "or mccl (MindSpore's collectives)",
    )
    e.add_argument("--bucket-mb", type=float, help="all-reduce bucket (piece) size in MiB for shm (default 1)")
    e.add_argument(
        "--overlap",
        action="store_true",
        help="shm: compute each parameter's update while later gradient buckets are still being "
        "summed (off by default: slower with one core per worker, measured)",
    )
    e.add_argument(
        "--no-shard-optimizer",
        action="store_true",
        help="shm: every worker updates all parameters (default: each updates and keeps the optimizer "
        "state of its share only, ZeRO-1, the state kept in shared memory for recovery)",
    )
    e.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin each worker to its own cores (embedded cluster; pinning is the default)",
    )
    e.add_argument(
        "--restart-survivors",
        action="store_true",
        help="replace every worker on a failure even when the backend could keep the survivors",
    )
    for kind, sig in (("kill", "SIGKILL"), ("hang", "SIGSTOP"), ("preempt", "SIGTERM")):
        e.add_argument(
            f"--{kind}-worker-at",
            action="append",
            default=[],
            metavar="STEP[:RANK]",
            help=f"fault injection: send {sig} to RANK (default 0) during STEP; repeatable",
        )
    p.set_defaults(func=run)


def _snapshot_every(text: str) -> int | None:
    """``--snapshot-every``: an integer, or ``auto`` (None)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1 or auto") from None


def _elastic_options(args, saved=None):
    """The elastic options the flags ask for, on top of a resumed run's ``saved`` ones (None: not elastic)."""
    from dataclasses import replace

    from openmindspore.elastic import ElasticOptions, parse_fault

    faults = [
        parse_fault(kind, spec) for kind in ("kill", "hang", "preempt") for spec in getattr(args, f"{kind}_worker_at")
    ]
    if saved is None and args.workers is None and not faults and args.address is None:
        return None
    given = {}
    if args.workers is not None:
        given["workers"] = args.workers
    for name in (
        "min_workers",
        "spares",
        "address",
        "checkpoint_every",
        "checkpoint_secs",
        "comm",
        "bucket_mb",
        "threads",
        "snapshot_store",
        "snapshot_ab",
    ):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    given.update(
        snapshot_every=args.snapshot_every,
        hang_timeout=args.hang_timeout,
        max_restarts=args.max_restarts,
        placement=args.placement,
        engine=args.engine,
        rejoin_wait=args.rejoin_wait,
        keep_survivors=not args.restart_survivors,
        pin=not args.no_pin,
        overlap=args.overlap,
        shard_optimizer=not args.no_shard_optimizer,
    )
    if faults or saved is None:
        given["faults"] = faults
    if args.workers is not None and saved is not None:  # None: recompute for the new world size
        given.update(threads=args.threads, spares=args.spares, min_workers=args.min_workers)
    if saved is None:
        return ElasticOptions(**{"workers": 2, **given})
    return replace(saved, **given)


def _print_summary(summary: dict, out: Path) -> None:
    from rich.console import Console

    c = Console()
    ev = summary.get("eval", {})
    metric = ", ".join(f"{k}={v:.4f}" for k, v in ev.items() if isinstance(v, (int, float)))
    c.print(
        f"[bold green]{summary['status']}[/] {summary['steps']}/{summary.get('total_steps', '?')} steps, "
        f"final loss {summary['final_loss']:.4f}, test {metric}"
    )
    med = (summary.get("step_time_s") or {}).get("median")
    if med:
        c.print(
            f"median step {med * 1000:.1f} ms, world size {summary['world_size']}, "
            f"params sha256 {summary['params_sha256'][:16]}…"
        )
    c.print(f"run directory: {out}")


def run(args) -> int:
    from openmindspore.engine.ray_engine import cluster_address

    apply_log_level(args.log_level)
    args.address = cluster_address(args.address)  # --address, else RAY_ADDRESS (ray job submit), else embedded
    with stdout_to_stderr(args.json):
        summary, out = _run(args)
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary, out)
    return 0 if summary.get("status") in ("completed", "stopped", "ok") else 1


def _run(args) -> tuple[dict, Path]:
    # MindSpore (train.run, train.trainer) loads only once the inputs are checked: a bad one fails at once
    from openmindspore.train.checkpoint import RunDir
    from openmindspore.train.config import config_from_dict, read_yaml
    from openmindspore.train.usercode import choose_code_path, restore_code_path

    quiet = args.quiet or args.json
    if args.resume:
        if args.config:
            raise ConfigError(
                "config", args.config, "no config together with --resume", "the run directory's own config.yaml is used"
            )
        out = Path(args.resume)
        from openmindspore.elastic.run import read_elastic_options, resume_elastic

        RunDir(out).require_run()
        restore_code_path(out, args.code_dir)  # before the engine starts: it ships this code to the workers
        opts = _elastic_options(args, read_elastic_options(out))
        if opts is not None:
            summary = resume_elastic(out, opts, max_steps=args.max_steps, quiet=quiet)
        else:
            from openmindspore.train.run import resume

            summary = resume(out, max_steps=args.max_steps, quiet=quiet)
    else:
        if not args.config:
            raise ConfigError("config", None, "a YAML config path or --resume DIR", "see `oms train --help`")
        raw = read_yaml(args.config)
        if args.seed is not None:
            raw["seed"] = args.seed
        if args.logger:
            raw["logger"] = [n.strip() for n in args.logger.split(",") if n.strip()]
        out = Path(args.out or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        from openmindspore.train.config import check_legacy_detection_config

        check_legacy_detection_config(raw)  # the old YOLOS loop's format: say how to write it now
        cfg = config_from_dict(raw, base_dir=Path(args.config).resolve().parent)
        choose_code_path(cfg.model, args.config, args.code_dir)
        opts = _elastic_options(args)
        resolved = opts.validate(cfg.batch_size) if opts is not None else None
        RunDir.ensure_new(out)
        if opts is not None and resolved is not None:
            from openmindspore.elastic.run import train_elastic
            from openmindspore.elastic.shm_space import check_shm_space
            from openmindspore.train.trainer import Trainer

            trainer = Trainer(cfg)  # data, model and its fit to the task checked here: a bad config writes nothing
            n_params = sum(int(p.size) for p in trainer.model.trainable_params())
            check_shm_space(n_params, len(trainer.optimizer.slots), resolved)  # too little /dev/shm: one line
            summary = train_elastic(cfg, opts, out, max_steps=args.max_steps, quiet=quiet)
        else:
            from openmindspore.train.run import train

            summary = train(cfg, out, max_steps=args.max_steps, quiet=quiet)
    return summary, out
