"""Shared benchmark helpers: timing and one-JSON-line-per-result output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable

os.environ.setdefault("GLOG_v", "3")


def timeit(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def load1() -> float:
    """The machine's 1-minute load average (recorded with every timing)."""
    return round(os.getloadavg()[0], 2)


def emit(record: dict) -> None:
    record.setdefault("machine", f"{platform.machine()} {os.cpu_count()} cpus")
    print(json.dumps(record, sort_keys=True), flush=True)
    sys.stdout.flush()


def oms_json(*args: str, timeout: float = 1800) -> dict:
    """Run ``oms ARGS --json`` (this interpreter's venv) in its own session, kill everything it started
    when it returns, and parse its summary; a failure exits with the command's stderr tail."""
    import json
    import signal
    import subprocess
    from pathlib import Path

    oms = Path(sys.executable).parent / "oms"
    p = subprocess.Popen(
        [str(oms), *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, GLOG_v="3"),
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if p.returncode != 0:
        raise SystemExit(f"oms {' '.join(args)} failed:\n{err[-3000:]}")
    return json.loads(out)
