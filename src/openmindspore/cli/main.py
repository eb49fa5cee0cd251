"""The ``oms`` command. Each subcommand lives in ``cli/cmd_<name>.py`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func=run(args) -> int``.
Heavy imports (MindSpore, Ray) happen inside ``run`` so ``oms --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from openmindspore import __version__
from openmindspore.errors import OMSError

__all__ = ["main", "build_parser", "one_line"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oms",
        description="OpenMindSpore: scalable, fault-tolerant training and serving on MindSpore.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `oms COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"openmindspore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import openmindspore.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"openmindspore.cli.{info.name}").register(sub)
    return parser


def one_line(text: str) -> str:
    """An error message as one line: a message that carries a remote traceback (a worker that failed to connect,
    a replica that failed to load) keeps its first line and the traceback's last, the exception itself."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else text.strip()
    return f"{lines[0]} ... {lines[-1]}"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ logs: errors only
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.root.handlers:  # the console keeps this level when a package logger goes lower
        handler.setLevel(logging.root.level)  # (a run's train.log records INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OMSError as e:
        print(f"oms {args.command}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oms {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
