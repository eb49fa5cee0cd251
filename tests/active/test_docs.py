"""docs/active.md: its shell example and its Python example run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from oms_testing import ROOT, run_oms

DOC = (ROOT / "docs" / "active.md").read_text()


@pytest.mark.slow
def test_shell_example_runs(tmp_path):
    block = re.findall(r"```bash\n(.*?)```", DOC, re.S)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("oms active")]
    assert len(lines) == 3
    for line in lines:
        args = [str(tmp_path / a) if a.startswith("runs/") else a for a in shlex.split(line)[1:]]
        proc = run_oms(*args, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "runs/compare/curve.png").exists() and (tmp_path / "runs/al/reliability.png").exists()


def test_python_example_runs(tmp_path):
    code = re.findall(r"```python\n(.*?)```", DOC, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.5 < float(proc.stdout.strip().splitlines()[-1]) <= 1.0
