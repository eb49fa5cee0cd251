"""Provenance of a run: what produced it, recorded in ``summary.json`` and every tracker.

Owns no state: :func:`provenance` collects package versions (MindSpore, Ray, NumPy, this package, Python),
the git commit (and whether the tree was dirty) of the current directory's repository, else of this
package's source checkout, when git is available, the command line, the config's SHA-256 (of its
canonical JSON) and the machine (CPU count, the CPUs this process may use, platform, device).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["provenance", "config_sha256", "git_commit"]

_PACKAGES = ("openmindspore", "mindspore", "ray", "numpy")


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit(path: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty", "root"}`` of the git repository holding ``path``, else None (no git, no repo)."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty, "root": git("rev-parse", "--show-toplevel")}
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """What produced a run with ``config`` (see the module docstring); ``argv`` defaults to ``sys.argv``."""
    package_dir = Path(__file__).resolve().parents[1]
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "versions": {name: _version(name) for name in _PACKAGES} | {"python": platform.python_version()},
        "git": git_commit(Path.cwd()) or git_commit(package_dir),
        "command": shlex.join(sys.argv if argv is None else argv),
        "config_sha256": config_sha256(config),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": usable,
            "platform": platform.platform(),
            "hostname": platform.node(),
            "device": os.environ.get("OMS_DEVICE", "CPU"),
        },
    }
