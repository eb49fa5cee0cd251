"""``oms datasets``: list the offline datasets."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(sub, "datasets", "list the offline datasets", "  oms datasets\n  oms datasets --json")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
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
    Console().print(table)
    return 0
