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


def oms_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "openmindspore.cli.main", *args]


def run_oms(
    *args: str, cwd: Path | None = None, timeout: float = 300, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real `oms` CLI in a new process session; everything it started (Ray's processes included)
    is killed when it returns, times out or fails."""
    e = dict(os.environ, GLOG_v="3", **(env or {}))
    p = subprocess.Popen(
        oms_command(*args),
        cwd=cwd or ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        kill_session(p.pid)
    proc = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"oms {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kill_session(pid: int) -> None:
    """SIGKILL every process of the session led by ``pid`` (a CLI run and what it started)."""
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# the optional `test` extra's reference packages: tests that compare against them skip only when the
# distribution is not installed at all (a plain `pip install -e .`); installed but failing to import fails
TEST_EXTRA_REASON = "comes with the test extra"  # in the skip reason; conftest's summary looks for it


def from_test_extra(module: str, dist: str | None = None):
    """Import ``module`` from the `test` extra (torch, transformers, causaldata, dowhy). When its
    distribution is not installed, skip the calling module with a reason the summary line repeats; when it
    is installed, an import error is a real failure (never a silent skip)."""
    import importlib
    import importlib.metadata

    import pytest

    try:
        importlib.metadata.version(dist or module)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"{dist or module} is not installed: it {TEST_EXTRA_REASON} (pip install -e '.[test]')",
            allow_module_level=True,
        )
    return importlib.import_module(module)
