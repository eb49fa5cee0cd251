"""Real Ray clusters for tests: nodes started with ``ray start`` (token authentication, as the multi-node recipe
of docs/distributed.md), each node's processes in a session of their own, so that teardown kills exactly those
processes (``ray stop`` would stop every Ray on the host, other users' too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
WORKER_PORTS = range(10002, 20000)  # Ray's default worker-port range: a head port must stay outside it


def ray_start(args: list[str], env: dict[str, str], timeout: float = 240) -> int:
    """Run ``ray start ARGS`` in a new session; returns the session id (its processes' group) once it returned."""
    p = subprocess.Popen(
        [RAY, "start", *args, "--disable-usage-stats"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_sessions([p.pid])
        raise
    if p.returncode != 0:
        kill_sessions([p.pid])
        raise RuntimeError(f"ray start {' '.join(args)} failed ({p.returncode}):\n{out[-3000:]}")
    return p.pid


def kill_sessions(sessions: list[int]) -> None:
    """SIGKILL the process groups of the nodes this test started (and nothing else)."""
    for sid in sessions:
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def ray_script(code: str, env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run a Python snippet with ``args`` (a separate Ray driver: the test process stays out of the cluster)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def ray_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "GLOG_v"}
    env.update(RAY_AUTH_MODE="token", **extra)
    return env
