"""``oms active``: active learning (query strategies, calibration, certified abstention, stopping)."""

from __future__ import annotations

import argparse

from openmindspore.cli._common import add_address, add_command, add_engine_arg, joined_cluster, print_json

EXAMPLES = """\
  oms active --dataset digits --model logreg --strategy margin --batch 10 --budget 200 --out runs/al
  oms active --dataset digits --strategy badge --budget 150 --seeds 5 --workers 2 --out runs/badge
  oms active --dataset digits --stop auto --target-accuracy 0.97 --budget 400 --out runs/auto
  oms active --dataset mnist5k --model cnn --strategy bald --batch 20 --budget 200 --out runs/cnn  # MC dropout
  oms active --dataset digits --oracle files --budget 60 --out runs/human     # writes queries.jsonl + PNGs
  oms active --dataset digits --oracle files --budget 60 --out runs/human --labels answers.csv
  oms active --report runs/al runs/badge --report-out runs/compare      # overlay learning curves"""

# CLI flag -> ActiveConfig field (flags left at None keep the config's default)
_FIELDS = (
    "dataset",
    "model",
    "strategy",
    "init",
    "batch",
    "budget",
    "initial",
    "seeds",
    "seed",
    "stop",
    "target_accuracy",
    "delta",
    "certify",
    "oracle",
    "ensemble",
    "mc_samples",
    "folds",
    "audit",
    "semi_supervised",
    "spread_alpha",
    "dropout",
    "epochs",
    "min_steps",
    "train_batch",
    "lr",
)


def register(sub) -> None:
    p = add_command(
        sub,
        "active",
        "active learning: ask for the labels the model needs, know when to stop and when to abstain",
        EXAMPLES,
        "Active learning on a pool (the dataset's train split), evaluated on its test split. Writes "
        "OUT/curve.jsonl, summary.json, curve.png, reliability.png; the same --out resumes.",
    )
    p.add_argument("--dataset", help="classification dataset (default digits; `oms datasets` lists them)")
    p.add_argument(
        "--model",
        help="logreg (default) | svm | random_forest | knn | cnn | mlp (MindSpore) | a layer-spec file (JSON/YAML) "
        "| an oms search directory (its best spec)",
    )
    p.add_argument(
        "--strategy",
        help="random | least-confidence | margin (default) | entropy | bald | coreset | badge | "
        "margin-kmeans | margin-kcenter",
    )
    p.add_argument("--init", help="how the first labels are picked: random (default) | kcenter | typical (TypiClust)")
    p.add_argument("--batch", type=int, help="labels per round (default 10)")
    p.add_argument("--budget", type=int, help="total labels, initial ones included (default 200)")
    p.add_argument("--initial", type=int, help="labels before the first model (default 20)")
    p.add_argument("--seeds", type=int, help="independent repetitions (default 1)")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--stop", help="none (default: the budget) | auto | stabilizing | max-uncertainty")
    p.add_argument("--target-accuracy", type=float, help="selective accuracy to certify (default 0.95)")
    p.add_argument("--delta", type=float, help="the certificate may fail with probability delta (default 0.1)")
    p.add_argument("--certify", help="ltt (Learn-then-Test, default) | sgr (selection with guaranteed risk)")
    p.add_argument(
        "--audit",
        type=float,
        help="share of each batch drawn uniformly from the whole pool; abstention is certified on these "
        "labels alone (default 0: on all acquired labels, which are harder than the pool)",
    )
    p.add_argument(
        "--semi-supervised",
        action="store_const",
        const=True,
        help="also fit on label-spreading pseudo-labels of the unlabelled pool",
    )
    p.add_argument(
        "--spread-alpha",
        type=float,
        help="--semi-supervised: label spreading's alpha, how far neighbours outweigh a given label (default 0.2)",
    )
    p.add_argument("--oracle", help="simulated (default: the dataset's labels) | files (queries.jsonl)")
    p.add_argument("--labels", metavar="CSV", help="answers (id,label) to the open queries of --oracle files")
    p.add_argument(
        "--ensemble",
        type=int,
        help="ensemble size, posterior samples for BALD: bootstrap members (scikit-learn) or seeds (MindSpore) "
        "(default 1)",
    )
    p.add_argument(
        "--mc-samples", type=int, help="posterior samples per point for BALD (MC-dropout passes) (default 20)"
    )
    p.add_argument(
        "--folds",
        type=int,
        help="cross-fitting folds for temperature scaling and the certificate (default 5; 0: none, for "
        "expensive learners: no temperature, nothing certified)",
    )
    g = p.add_argument_group("MindSpore learners (cnn, mlp, a spec): each fit trains in a fresh process")
    g.add_argument("--dropout", type=float, help="cnn/mlp: dropout before the classifier head (default 0.5; 0: none)")
    g.add_argument("--epochs", type=int, help="epochs over the labelled set per fit (default 30)")
    g.add_argument("--min-steps", type=int, help="at least this many optimizer steps per fit (default 300)")
    g.add_argument("--train-batch", type=int, help="training batch size (default 32)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 0.001)")
    p.add_argument("--workers", type=int, default=1, help="seeds run in parallel as engine tasks (default 1)")
    add_engine_arg(p, "the parallel seeds")
    add_address(p, "parallel seeds (--workers > 1)")
    p.add_argument("--out", help="run directory")
    p.add_argument("--report", nargs="+", metavar="DIR", help="rewrite summary + plots of runs (overlay several)")
    p.add_argument("--report-out", help="where --report puts the overlaid curve.png (default: the first DIR)")
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    p.add_argument("--quiet", action="store_true", help="no per-round progress")
    p.add_argument("--kill-at-round", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL mid-run
    p.set_defaults(func=run)


def _report(args) -> int:
    from openmindspore.active import write_report

    rep = write_report(args.report, args.report_out)
    if args.json:
        print_json({"summaries": rep["summaries"], "files": rep["files"]})
    else:
        print(rep["text"])
        print("wrote " + ", ".join(rep["files"]))
    return 0


def run(args) -> int:
    from openmindspore.errors import ConfigError

    if args.report:
        return _report(args)
    if args.out is None:
        raise ConfigError("--out", None, "a run directory (required unless --report)", "add --out DIR")
    from openmindspore.active import active_config, run_active
    from openmindspore.cli._common import stdout_to_stderr

    cfg = active_config({k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None})
    from rich.console import Console

    console = Console(stderr=True, quiet=args.quiet or args.json)

    def on_round(r: dict) -> None:
        cert = f"coverage {r['coverage']:.2f}" if r["certified"] else "not certified"
        console.print(
            f"seed {r['seed']} round {r['round']}: {r['labels']} labels, accuracy {r['accuracy']:.3f}, "
            f"ECE {r['ece']:.3f}, {cert} ({r['seconds']:.1f} s)",
            highlight=False,
        )

    with stdout_to_stderr(args.json), joined_cluster(args.address, args.workers, args.engine):
        s = run_active(
            cfg,
            args.out,
            workers=args.workers,
            labels_csv=args.labels,
            on_round=on_round,
            kill_at=args.kill_at_round,
            engine=args.engine,
        )
    if args.json:
        print_json(s)
        return 0
    from openmindspore.active.report import text

    print(text(s))
    if s["status"] == "waiting":
        n = sum(p["pending"] for p in s["per_seed"])
        print(f"waiting for {n} answers: label {args.out}/queries.jsonl, then re-run with --labels answers.csv")
    else:
        print(f"wrote {args.out}/summary.json, curve.jsonl, curve.png, reliability.png")
    return 0
