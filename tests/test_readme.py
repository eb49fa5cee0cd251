"""The README's usage examples run as written (train commands capped with --max-steps to stay quick); the
blocks run once a session (readme_testing), tests/serve/test_readme_serving.py serves what they trained."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from readme_testing import blocks, section, usage_commands

from oms_testing import ROOT


def test_quickstart_shows_the_two_make_commands_first():
    first = blocks("bash")[0]
    assert [ln.split("#")[0].strip() for ln in first.splitlines() if ln.strip().startswith("make")] == [
        "make demo",
        "make test",
    ]


@pytest.mark.slow
def test_usage_commands_run(readme_usage):
    assert len(usage_commands()) >= 5
    assert not readme_usage.failures(), readme_usage.failures()
    assert [line for line, _ in readme_usage.results] == usage_commands()


def test_python_example_runs(tmp_path):
    code = blocks("python")[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= float(proc.stdout.strip().splitlines()[-1]) <= 1.0


@pytest.mark.slow
@pytest.mark.distributed
def test_your_model_your_data_example_runs_from_a_user_folder(readme_user_project):
    """The section's files are those of examples/user_project; its commands run as written, from a copy of
    that folder outside the repository."""
    import json

    sec = section("Your model, your data")
    nets, api = re.findall(r"```python\n(.*?)```", sec, re.S)
    (config,) = re.findall(r"```yaml\n(.*?)```", sec, re.S)
    (commands,) = blocks("bash", sec)
    example = ROOT / "examples" / "user_project"
    assert (example / "nets.py").read_text() == nets and (example / "flowers.yaml").read_text() == config
    assert not readme_user_project.failures(), readme_user_project.failures()
    ran = [line for line in commands.splitlines() if not line.startswith("cd ")]
    assert [line for line, _ in readme_user_project.results] == ran
    cwd = readme_user_project.cwd
    assert cwd.name == "user_project" and ROOT not in cwd.parents  # outside the repository
    dp = json.loads((cwd / "runs" / "flowers-dp" / "summary.json").read_text())
    assert dp["recoveries"][0]["steps_lost"] == 0 and dp["steps"] == 100
    resumed = json.loads((cwd / "runs" / "flowers" / "summary.json").read_text())
    assert resumed["steps"] == 100 and resumed["eval"]["accuracy"] > 0.5  # 3 classes: chance is 1/3
    proc = subprocess.run([sys.executable, "-c", api], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= float(proc.stdout.strip().splitlines()[-1]) <= 1.0
