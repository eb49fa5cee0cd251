"""Shared benchmark helpers: timing and one-JSON-line-per-result output."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Callable

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


def emit(record: dict) -> None:
    record.setdefault("machine", f"{platform.machine()} {os.cpu_count()} cpus")
    print(json.dumps(record, sort_keys=True), flush=True)
    sys.stdout.flush()
