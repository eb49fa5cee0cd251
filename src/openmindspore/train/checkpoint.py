"""Run directories and atomic checkpoints.

Layout of a run directory::

    DIR/config.yaml          resolved training config
    DIR/preprocess.json      user data: the fitted preprocessing (raw input -> model input, class names)
    DIR/code.json            user code: the folders the model's module was imported from
    DIR/summary.json         final (or latest) summary
    DIR/metrics.jsonl        one line per logged step
    DIR/checkpoints/step_00000100.safetensors   TrainState bytes
    DIR/checkpoints/step_00000100.json          manifest: step, sha256, world_size, created
    DIR/checkpoints/LATEST   name of the newest complete checkpoint

Every file is written to a temporary name and renamed, so a crash never leaves a torn checkpoint; the
``LATEST`` pointer moves only after the checkpoint and its manifest are on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from openmindspore.data.preprocess import Preprocessor
from openmindspore.errors import ConfigError, OMSError
from openmindspore.train.state import TrainState
from openmindspore.train.usercode import code_path

__all__ = ["RunDir", "atomic_write"]


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """A training run's directory."""

    def __init__(self, path: str | Path, keep: int = 3) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.keep = keep

    @classmethod
    def ensure_new(cls, path: str | Path) -> RunDir:
        """Refuse a directory that already holds a run (checked before anything is built or written)."""
        run = cls(path)
        if run.is_run():
            raise ConfigError(
                "--out",
                str(path),
                "a new or empty directory (this one holds a run)",
                f"use `oms train --resume {path}` to continue it, or choose another --out",
            )
        return run

    @classmethod
    def create(cls, path: str | Path, config: dict[str, Any]) -> RunDir:
        """A new run directory holding ``config``; refuses to overwrite an existing run."""
        run = cls.ensure_new(path)
        run.path.mkdir(parents=True, exist_ok=True)
        dataset = config.get("dataset")
        if isinstance(dataset, dict):  # the user's files: keep the statistics serving needs
            from openmindspore.data import load_dataset

            pre = load_dataset(dataset).preprocessor
            if pre is not None:
                atomic_write(run.preprocess_path, pre.to_json())
        code = code_path()
        if code:
            atomic_write(run.path / "code.json", json.dumps({"code_path": code}, indent=2))
        run.write_config(config)  # last: it marks the directory as a run
        return run

    # --------------------------------------------------------------- files
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def preprocess_path(self) -> Path:
        return self.path / "preprocess.json"

    def preprocessor(self) -> Preprocessor | None:
        """The run's fitted preprocessing (runs on the user's files), else ``None``."""
        return Preprocessor.load(self.preprocess_path) if self.preprocess_path.is_file() else None

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def require_run(self) -> RunDir:
        if not self.path.is_dir():
            raise ConfigError("run directory", str(self.path), "an existing directory written by `oms train`")
        if not self.is_run():
            raise ConfigError(
                "run directory",
                str(self.path),
                "a run directory containing config.yaml",
                "pass the --out directory of an earlier `oms train`",
            )
        return self

    def write_config(self, cfg: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(cfg, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_path.read_text())

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=float))

    def read_summary(self) -> dict[str, Any]:
        p = self.path / "summary.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    # --------------------------------------------------------- checkpoints
    def save(self, state: TrainState, world_size: int = 1) -> Path:
        """Atomically write ``state`` and move ``LATEST`` to it."""
        blob = state.to_bytes()
        name = f"step_{state.step:08d}"
        atomic_write(self.ckpt_dir / f"{name}.safetensors", blob)
        manifest = {
            "step": state.step,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "params_sha256": state.params_sha256(),
            "world_size": world_size,
            "samples_seen": state.samples_seen,
            "created": time.time(),
        }
        atomic_write(self.ckpt_dir / f"{name}.json", json.dumps(manifest, indent=2))
        atomic_write(self.ckpt_dir / "LATEST", name)
        self._prune(keep_name=name)
        return self.ckpt_dir / f"{name}.safetensors"

    def _prune(self, keep_name: str) -> None:
        ckpts = sorted(self.ckpt_dir.glob("step_*.safetensors"))
        for p in ckpts[: -self.keep]:
            if p.stem != keep_name:
                p.unlink(missing_ok=True)
                p.with_suffix(".json").unlink(missing_ok=True)

    def latest_name(self) -> str | None:
        p = self.ckpt_dir / "LATEST"
        return p.read_text().strip() if p.is_file() else None

    def load_latest(self) -> TrainState:
        """The newest complete checkpoint, verified against its manifest's SHA-256."""
        name = self.latest_name()
        if name is None:
            raise ConfigError(
                "run directory",
                str(self.path),
                "a run with at least one checkpoint",
                "this run stopped before its first checkpoint; start it again",
            )
        blob = (self.ckpt_dir / f"{name}.safetensors").read_bytes()
        manifest = json.loads((self.ckpt_dir / f"{name}.json").read_text())
        if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
            raise OMSError(f"checkpoint {name} in {self.ckpt_dir} is corrupted (SHA-256 mismatch with its manifest)")
        return TrainState.from_bytes(blob)
