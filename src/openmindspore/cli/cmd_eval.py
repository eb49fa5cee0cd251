"""``oms eval``: evaluate a run's latest checkpoint on a split of its dataset, or on new labelled data."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "eval",
        "evaluate a run's checkpoint on its dataset's test split (or on new labelled files)",
        "  oms eval runs/mnist\n"
        "  oms eval runs/mnist --split val --json\n"
        "  oms eval runs/flowers --data more_flowers.csv     # raw rows, through the run's saved preprocessing",
    )
    p.add_argument("run_dir", help="run directory written by `oms train`")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a new labelled file/folder in the run's own format (CSV, image folder, npz, MindRecord), "
        "preprocessed with the statistics saved at training (preprocess.json)",
    )
    p.add_argument(
        "--code-dir", action="append", metavar="DIR", help="folder holding the model's module (default: as recorded)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from openmindspore.train import evaluate_run

    result = evaluate_run(args.run_dir, args.split, data=args.data, code_dirs=args.code_dir)
    if args.json:
        print_json(result)
    else:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float))
        print(f"{result['dataset']} {result['split']} @ step {result['step']}: {metrics}")
    return 0
