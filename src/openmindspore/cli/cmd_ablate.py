"""``oms ablate``: randomized factorial ablation of modeling choices with real training."""

from __future__ import annotations

import argparse
import json

from openmindspore.cli._common import (
    DATASET_HELP,
    add_address,
    add_command,
    add_engine_arg,
    add_study_logging,
    apply_log_level,
    dataset_arg,
    joined_cluster,
    print_json,
    stdout_to_stderr,
)

__all__ = ["register", "run"]

EXAMPLES = """\
  oms ablate --base default --factor maxpool --factor batchnorm --repeats 3 --steps 300 --workers 2 \\
      --out runs/ablate-maxpool
  oms ablate --base runs/mnist --factor dropout --repeats 4 --dataset mnist5k --out runs/ablate-dropout
  oms ablate --base layers.yaml --factor kernel5 --factor gelu --repeats 2 --dataset digits --steps 100 --out runs/a

factors (on / off):
  maxpool    max-pools kept (or 2x2 max-pools added after the first two conv blocks) / all max-pools removed
  batchnorm  batch-norm right after every conv / all batch-norm removed
  dropout    dropout kept (or 0.25 after each hidden dense) / all dropout removed
  gelu       ReLU -> GELU / GELU -> ReLU
  kernel5    5x5 first conv / 3x3 first conv"""


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "ablate",
        "randomized factorial ablation: effects of modeling choices with 95%% CIs",
        EXAMPLES,
        "Train every on/off combination of the factors REPEATS times (randomized order, "
        "repeat r shares one seed across cells), in parallel on the engine; estimate main effects "
        "and interactions with 95% CIs. Writes runs.jsonl (resumable), effects.json, report.md and "
        "forest.png into --out.",
    )
    p.add_argument(
        "--base",
        default="default",
        help="'default' (DEFAULT_CNN), a layer-spec JSON/YAML, a run or search directory (default: default)",
    )
    p.add_argument(
        "--factor",
        action="append",
        default=[],
        help="a factor (repeatable): maxpool, batchnorm, dropout, gelu, kernel5",
    )
    p.add_argument("--repeats", type=int, default=3, help="replicates per cell, >= 2 (default 3)")
    p.add_argument("--dataset", help="image dataset (default: the base run's, else mnist5k): " + DATASET_HELP)
    p.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the base run's, else 64)")
    p.add_argument(
        "--metric",
        default="test.accuracy",
        help="test.accuracy (default) | val.accuracy | test.loss | val.loss | train.final_loss",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel trainings (engine tasks) (default 1)")
    add_engine_arg(p, "the parallel trainings")
    add_address(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--json", action="store_true", help="print the effect records as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no per-run progress")
    add_study_logging(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from openmindspore.causal.ablation import analyze, load_base, run_ablation
    from openmindspore.causal.effects import answer_sentence
    from openmindspore.causal.factors import get_factor
    from openmindspore.causal.report import write_report
    from openmindspore.causal.treatments import NAMED, Treatment
    from openmindspore.data import dataset_label
    from openmindspore.errors import ConfigError
    from openmindspore.track.studies import StudyLog

    apply_log_level(args.log_level)
    if not args.factor:
        raise ConfigError("--factor", None, "at least one factor", "e.g. --factor maxpool")
    factors = [get_factor(f) for f in args.factor]  # unknown factor -> error listing the valid ones
    metrics = ("test.accuracy", "val.accuracy", "test.loss", "val.loss", "train.final_loss")
    if args.metric not in metrics:
        raise ConfigError("--metric", args.metric, f"one of {', '.join(metrics)}")
    base, base_opts = load_base(args.base)
    dataset = dataset_arg(args.dataset) if args.dataset else base_opts.get("dataset", "mnist5k")
    opts = {"lr": args.lr, "batch_size": args.batch_size or base_opts.get("batch_size", 64)}
    n_total = 2 ** len(factors) * args.repeats
    study = StudyLog(
        args.out,
        f"ablate {', '.join(args.factor)}",
        n_total,
        [n.strip() for n in args.logger.split(",") if n.strip()],
        {"base": args.base, "factors": args.factor, "repeats": args.repeats, "seed": args.seed, "steps": args.steps},
        args.tracking_uri,
        quiet=args.quiet or args.json,
    )

    def on_run(row: dict) -> None:
        m = row.get("metrics", {}).get("test", {}).get("accuracy")
        res = f"test acc {m:.4f}" if m is not None else f"[red]failed[/red] ({row.get('error')})"
        n = study.done + 1
        line = f"run {n}/{n_total} {row['factors']} repeat {row['repeat']}: {res} ({row['duration_s']:.0f} s)"
        study.trial(f"run-{n - 1}", row, line)

    with study, stdout_to_stderr(args.json), joined_cluster(args.address, args.workers, args.engine):
        result = run_ablation(
            base,
            args.factor,
            args.repeats,
            args.out,
            dataset=dataset,
            steps=args.steps,
            workers=args.workers,
            engine=args.engine,
            seed=args.seed,
            train_opts=opts,
            on_run=on_run,
        )
    study.close()
    records = analyze(result["runs"], args.factor, args.metric)
    answers = []
    for r in records:
        f = next((x for x in factors if x.name == r["treatment"]), None)
        if f is not None:
            named = NAMED.get(f.treatment)
            t = Treatment(
                f.name, lambda s: False, named.phrase_on if named else f.on, named.phrase_off if named else f.off
            )
            answers.append(answer_sentence(t, args.metric, [r], f"on = {f.on}; off = {f.off}"))
        else:
            answers.append(
                f"Interaction {r['treatment']} (effect of the first when the second is on, minus when it "
                f"is off): {r['ate']:+.4f} [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]."
            )
    failed = sum(r.get("status") != "ok" for r in result["runs"])
    details = {
        "config": {k: v for k, v in result["config"].items() if k != "order"},
        "failed_runs": failed,
        "cell_means": _cell_means(result["runs"], args.metric),
    }
    title = f"Ablation of {', '.join(args.factor)} ({dataset_label(dataset)})"
    paths = write_report(args.out, records, answers, title, details)
    if args.json:
        print_json({"records": records, "answers": answers, **paths})
    else:
        for r in records:
            print(
                f"{r['treatment']:>22}: {r['ate']:+.4f} [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] "
                f"(n={r['n']}, df={r['df']})"
            )
        for a in answers:
            print(a)
        print(f"wrote {paths['json']}, {paths['markdown']}, {paths['png']}")
    return 0


def _cell_means(runs: list[dict], metric: str) -> list[dict]:
    """Mean of ``metric`` per cell (factor levels), for the report."""
    split, _, name = metric.partition(".")
    cells: dict = {}
    for r in runs:
        v = (r.get("metrics", {}).get(split) or {}).get(name)
        if v is not None:
            cells.setdefault(json.dumps(r["factors"], sort_keys=True), []).append(v)
    return [{"factors": json.loads(k), "mean": sum(v) / len(v), "n": len(v)} for k, v in sorted(cells.items())]
