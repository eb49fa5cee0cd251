"""``oms datasets``: list the offline datasets, or show what a dataset (yours included) looks like."""

from __future__ import annotations

from openmindspore.cli._common import DATASET_HELP, add_command, dataset_arg, print_json

EXAMPLES = """\
  oms datasets
  oms datasets --json
  oms datasets --show digits
  oms datasets --show '{format: csv, path: flowers.csv, label: species}'   # check your files before training
  oms datasets --show train.yaml                                          # the dataset: of a config"""


def register(sub) -> None:
    p = add_command(sub, "datasets", "list the offline datasets, or show one (yours included)", EXAMPLES)
    p.add_argument(
        "--show", metavar="DATASET", help="load it and show its task, shapes, classes and splits: " + DATASET_HELP
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _show(text: str) -> dict:
    from openmindspore.data import dataset_label, load_dataset

    ref = dataset_arg(text)
    d = load_dataset(ref)
    pre = d.preprocessor
    return {
        "dataset": dataset_label(ref),
        "spec": ref,
        "task": d.task,
        "input_shape": list(d.input_shape),
        "num_classes": d.num_classes,
        "classes": pre.class_names if pre is not None else None,
        "splits": {s: len(d.split(s)[1]) for s in ("train", "val", "test")},
        "features": pre.feature_names if pre is not None and pre.kind == "tabular" else None,
    }


def run(args) -> int:
    if args.show:
        info = _show(args.show)
        if args.json:
            print_json(info)
        else:
            for key in ("dataset", "task", "input_shape", "num_classes", "classes", "splits", "features"):
                if info[key] is not None:
                    print(f"{key:>12}: {info[key]}")
        return 0
    from openmindspore.data import list_datasets

    rows = [{"name": d.name, "task": d.task, "source": d.source, "description": d.description} for d in list_datasets()]
    if args.json:
        print_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="offline datasets")
    for col in ("name", "task", "source", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["task"], r["source"], r["description"])
    console = Console()
    console.print(table)
    console.print(
        "your own files: dataset: {format: csv | npz | imagefolder | mindrecord, path: ...} (see docs/data.md)",
        highlight=False,
    )
    return 0
