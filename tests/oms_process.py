"""``start_oms``: a real ``oms`` command (e.g. ``oms serve``) as a background process of its own session, with
the environment of a fresh shell: no code path published by the test process (``OMS_CODE_PATH``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from oms_testing import oms_command


def start_oms(*args: str, cwd: Path, stdout: int = subprocess.PIPE) -> subprocess.Popen:
    """Start ``oms ARGS`` in ``cwd``; stop it with SIGTERM, or ``oms_testing.kill_session(proc.pid)``."""
    env = {k: v for k, v in os.environ.items() if k != "OMS_CODE_PATH"}
    return subprocess.Popen(
        oms_command(*args),
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env, GLOG_v="3"),
        start_new_session=True,
    )
