"""``oms export``: write a trained run's model as a portable MindSpore IR file that ``oms serve`` serves."""

from __future__ import annotations

from pathlib import Path

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "export",
        "export a trained run's model (MindIR, MindSpore's ms.export) for serving without the run directory",
        "  oms export runs/digits --format mindir                 # runs/digits/export/digits.mindir + .json\n"
        "  oms export runs/digits/checkpoints/step_00000100.safetensors --out model.mindir\n"
        "  oms serve model.mindir --name digits                   # serves the exported graph",
    )
    p.add_argument(
        "run", metavar="RUN_DIR_OR_CHECKPOINT", help="run directory from `oms train --out`, or one checkpoint"
    )
    p.add_argument("--format", choices=["mindir"], default="mindir", help="export format (MindSpore IR)")
    p.add_argument("--out", help="output .mindir file (default: RUN/export/<run name>.mindir)")
    p.add_argument("--json", action="store_true", help="print the written signature as one JSON line")
    p.set_defaults(func=run)


def run(args) -> int:
    from openmindspore.serve.mindir import export_mindir

    src = Path(args.run)
    run_dir = src.parent.parent if src.suffix == ".safetensors" else src
    out = Path(args.out) if args.out else run_dir / "export" / f"{run_dir.resolve().name}.mindir"
    info = export_mindir(args.run, out)
    if args.json:
        print_json({"path": str(out.resolve()), **info})
    else:
        shapes = ", ".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in info["inputs"])
        print(f"wrote {out} ({info['task']}; input {shapes}); serve it with: oms serve {out}")
    return 0
