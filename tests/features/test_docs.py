"""docs/features.md: the Python example runs as written and prints the ranking, selection and construction."""

import re
import subprocess
import sys

from oms_testing import ROOT


def test_python_example_runs(tmp_path):
    doc = (ROOT / "docs" / "features.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 12 and lines[0].strip().startswith("x1:")
    assert lines[10].startswith("kept: [") and lines[11].startswith("constructed: [")
    assert "'x3'" in lines[10]  # bmi, the strongest predictor of the diabetes target, is kept
