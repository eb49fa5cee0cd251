"""Helpers shared by subcommands."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_command", "print_json"]


def add_command(sub, name: str, help: str, examples: str, description: str = "") -> argparse.ArgumentParser:
    """Add a subcommand whose ``--help`` ends with an Examples section."""
    return sub.add_parser(name, help=help, description=description or help,
                          epilog="examples:\n" + examples.rstrip(),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=None, sort_keys=True, default=str)
    sys.stdout.write("\n")
