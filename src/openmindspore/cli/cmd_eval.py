"""``oms eval``: evaluate a run's latest checkpoint on its dataset's test split."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "eval",
        "evaluate a run's checkpoint on its dataset's test split",
        "  oms eval runs/mnist\n  oms eval runs/mnist --split val --json",
    )
    p.add_argument("run_dir", help="run directory written by `oms train`")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from openmindspore.train import evaluate_run

    result = evaluate_run(args.run_dir, args.split)
    if args.json:
        print_json(result)
    else:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float))
        print(f"{result['dataset']} {result['split']} @ step {result['step']}: {metrics}")
    return 0
