"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["add_command", "print_json", "stdout_to_stderr"]


def add_command(sub, name: str, help: str, examples: str, description: str = "") -> argparse.ArgumentParser:
    """Add a subcommand whose ``--help`` ends with an Examples section."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog="examples:\n" + examples.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=None, sort_keys=True, default=str)
    sys.stdout.write("\n")


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send everything written to stdout (by us, libraries or child processes) to stderr, so that a
    ``--json`` result printed afterwards is the only thing on stdout."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
