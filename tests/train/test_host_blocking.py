"""On CPU, importing openmindspore switches MindSpore's PyNative pipeline to host-blocking dispatch
(``MS_DEV_HOST_BLOCKING_RUN=1``; with the pipeline, the Python thread busy-waits without a yield for the whole
of a compiled training step, taking a core from the step's own threads: docs/benchmarks.md). MindSpore reads
the variable once, at its first operator, so each case runs in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
PROBE = "import os, openmindspore; print(os.environ.get('MS_DEV_HOST_BLOCKING_RUN', 'unset'))"


def _env_after_import(**env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("MS_DEV_HOST_BLOCKING_RUN", "OMS_DEVICE")}
    full.update(PYTHONPATH=SRC, **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_import_sets_host_blocking_dispatch_on_cpu():
    assert _env_after_import() == "1"
    assert _env_after_import(OMS_DEVICE="cpu") == "1"


def test_a_value_the_user_set_wins():
    assert _env_after_import(MS_DEV_HOST_BLOCKING_RUN="0") == "0"


def test_other_devices_keep_the_pipeline():
    assert _env_after_import(OMS_DEVICE="Ascend") == "unset"
