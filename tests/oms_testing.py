"""Helpers for tests: run the real `oms` CLI, pick free ports."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("GLOG_v", "3")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_oms(*args: str, cwd: Path | None = None, timeout: float = 300, check: bool = False,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `oms` CLI in a new process."""
    e = dict(os.environ, GLOG_v="3", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "openmindspore.cli.main", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"oms {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
