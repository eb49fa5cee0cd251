"""The default tracker: events and validation metrics as JSON lines in the run directory.

Owns ``events.jsonl`` (one line per event: step, kind, time and the event's fields) and ``eval.jsonl``
(one line per periodic validation: step and ``val.<metric>`` values). Training metrics stay in today's
``metrics.jsonl``, written by the run directory itself, whatever the trackers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["JsonlLogger", "read_jsonl"]


def _append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True, default=str) + "\n")


class JsonlLogger:
    """``events.jsonl`` and ``eval.jsonl`` under ``run_dir``."""

    name = "jsonl"

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)

    def log_params(self, params: dict[str, Any], provenance: dict[str, Any]) -> None:
        return None  # config.yaml and summary.json hold them

    def log_metrics(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        val = {k: v for k, v in metrics.items() if k.startswith("val.")}
        if val:
            _append(self.dir / "eval.jsonl", {"step": step, "time": wall_time, **val})

    def log_event(self, step: int, kind: str, fields: dict[str, Any], wall_time: float) -> None:
        _append(self.dir / "events.jsonl", {"step": step, "kind": kind, "time": wall_time, **fields})

    def log_artifacts(self, paths: list[Path]) -> None:
        return None

    def close(self, status: str) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"events": str(self.dir / "events.jsonl"), "eval": str(self.dir / "eval.jsonl")}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (none when it does not exist)."""
    p = Path(path)
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.is_file() else []
