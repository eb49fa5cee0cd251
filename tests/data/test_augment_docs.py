"""docs/augment.md: its YAML example is a valid config and its Python example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from oms_testing import ROOT
from openmindspore.train import config_from_dict

DOC = (ROOT / "docs" / "augment.md").read_text()


def test_yaml_example_is_a_valid_config():
    block = re.findall(r"```yaml\n(.*?)```", DOC, re.S)[0]
    cfg = config_from_dict(yaml.safe_load(block))
    assert [op.name for op in cfg.augment] == ["shift", "keep_cutout"]
    assert cfg.saliency.method == "gradient" and cfg.saliency.every == 2


def test_python_example_runs(tmp_path):
    code = re.findall(r"```python\n(.*?)```", DOC, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = dict(line.split(":", 1) for line in proc.stdout.strip().splitlines() if ":" in line)
    assert int(out["saliency refreshes"]) == 2
    assert 0.0 < float(out["clutter accuracy"]) <= 1.0
    pg, rest = out["pointing game"].split("randomization Spearman:")
    assert 0.0 <= float(pg) <= 1.0 and float(rest) < 0.3
