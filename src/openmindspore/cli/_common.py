"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "add_command",
    "add_address",
    "add_engine_arg",
    "add_log_level",
    "add_study_logging",
    "apply_log_level",
    "joined_cluster",
    "print_json",
    "stdout_to_stderr",
    "dataset_arg",
    "DATASET_HELP",
]

DATASET_HELP = (
    "a registered dataset (oms datasets), a YAML/JSON file holding a dataset spec (or a config with "
    "dataset:), or an inline spec such as '{format: imagefolder, path: photos/}'"
)


def add_command(sub, name: str, help: str, examples: str, description: str = "") -> argparse.ArgumentParser:
    """Add a subcommand whose ``--help`` ends with an Examples section."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog="examples:\n" + examples.rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_log_level(p: argparse.ArgumentParser) -> None:
    """``--log-level``: this package's log level on the console (a run's ``train.log`` keeps INFO)."""
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of openmindspore's own loggers on stderr (default WARNING; other libraries unchanged)",
    )


def apply_log_level(level: str | None) -> None:
    """Set the ``openmindspore`` loggers (not other libraries') to ``level`` on the console."""
    if not level:
        return
    import logging

    value = getattr(logging, level)
    logging.getLogger("openmindspore").setLevel(value)
    for handler in logging.root.handlers:
        handler.setLevel(value)
    if not logging.root.handlers:  # the Python API without basicConfig: one stderr handler
        logging.basicConfig(level=logging.WARNING)
        logging.root.handlers[0].setLevel(value)


def add_study_logging(p: argparse.ArgumentParser) -> None:
    """``--logger``, ``--tracking-uri`` and ``--log-level`` of a search or ablation (trials as nested MLflow runs)."""
    p.add_argument(
        "--logger",
        metavar="NAMES",
        default="",
        help="trackers, comma-separated: mlflow logs the study as a run and each trial as a nested run "
        "(the trial log itself is always written)",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: a file store in --out/mlruns)")
    add_log_level(p)


def add_engine_arg(p: Any, runs: str) -> None:
    """``--engine ray|yuanrong``: which engine runs ``runs`` (docs/engines.md)."""
    p.add_argument(
        "--engine",
        choices=["ray", "yuanrong"],
        default="ray",
        help=f"distributed execution engine for {runs}: ray (default) or yuanrong (openYuanrong; local mode "
        "runs them as threads of this process unless YR_SERVER_ADDRESS names a cluster; docs/engines.md)",
    )


def add_address(p: argparse.ArgumentParser, what: str = "parallel work (--workers > 1)") -> None:
    """``--address``: the Ray cluster to join (an explicit value wins over ``$RAY_ADDRESS``)."""
    p.add_argument(
        "--address",
        help=f"HOST:PORT of a running Ray cluster for {what} (default: $RAY_ADDRESS, as `ray job submit` sets it, "
        "else an embedded local cluster)",
    )


@contextmanager
def joined_cluster(address: str | None, workers: int, engine: str = "ray") -> Iterator[None]:
    """Join ``--address`` for the duration of a command whose ``workers > 1`` parallel tasks run on Ray, and
    disconnect afterwards; without ``--address`` the tasks join ``$RAY_ADDRESS`` or start an embedded
    cluster themselves (:mod:`openmindspore.engine.tasks`)."""
    if not address or workers <= 1:
        yield
        return
    from openmindspore.engine import get_engine

    eng = get_engine(engine)
    eng.start(address=address)
    try:
        yield
    finally:
        eng.shutdown()


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


def dataset_arg(text: str) -> str | dict[str, Any]:
    """``--dataset``: a registered name, a YAML/JSON file with a spec (or a whole config with ``dataset:``;
    its relative paths are relative to that file), or an inline YAML mapping (relative to the current
    directory). Returns the name or the validated, absolute spec."""
    from pathlib import Path

    import yaml

    from openmindspore.data import parse_dataset
    from openmindspore.errors import ConfigError

    p = Path(text)
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        if not p.is_file():
            raise ConfigError("--dataset", text, "an existing YAML/JSON file holding a dataset spec")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError("--dataset", text, f"valid YAML ({e})") from None
        if isinstance(data, dict) and "dataset" in data:
            data = data["dataset"]
        return parse_dataset(data, base_dir=p.resolve().parent)
    if text.lstrip().startswith("{"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError("--dataset", text, f"a valid inline mapping ({e})") from None
        return parse_dataset(data)
    return parse_dataset(text)
