"""``oms eval``: evaluate a run's latest checkpoint on a split of its dataset, on new labelled data, or on
another registered dataset with the same input shape (``--dataset``: robustness sets report object focus)."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "eval",
        "evaluate a run's checkpoint on its dataset's test split (or on new labelled files)",
        "  oms eval runs/mnist\n"
        "  oms eval runs/mnist --split val --json\n"
        "  oms eval runs/flowers --data more_flowers.csv     # raw rows, through the run's saved preprocessing\n"
        "  oms eval runs/mnist --dataset mnist5k_clutter     # another registered dataset (+ pointing game)",
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
        "--dataset",
        metavar="NAME",
        help="a registered dataset with the run's input shape (e.g. mnist5k_clutter): its --split is evaluated, "
        "with object-focus metrics (pointing game, saliency mass in the box) when it has boxes",
    )
    p.add_argument(
        "--code-dir", action="append", metavar="DIR", help="folder holding the model's module (default: as recorded)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from openmindspore.errors import ConfigError
    from openmindspore.train.checkpoint import RunDir

    # MindSpore (train.run) loads only once the arguments are checked: a wrong one fails at once
    RunDir(args.run_dir).require_run()  # as load_run does first
    if args.dataset is not None:
        if args.data is not None:
            raise ConfigError("--dataset", args.dataset, "either --dataset or --data", "give one of them")
        from openmindspore.train.focus import evaluate_dataset
        from openmindspore.train.run import load_run

        _, trainer, _ = load_run(args.run_dir, code_dirs=args.code_dir)
        result = evaluate_dataset(trainer, args.dataset, args.split)
    else:
        from openmindspore.train.run import evaluate_run

        result = evaluate_run(args.run_dir, args.split, data=args.data, code_dirs=args.code_dir)
    if args.json:
        print_json(result)
    else:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float))
        print(f"{result['dataset']} {result['split']} @ step {result['step']}: {metrics}")
    return 0
