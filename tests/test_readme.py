"""The README's usage examples run as written (train commands capped with --max-steps to stay quick)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from oms_testing import ROOT, run_oms

README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_quickstart_shows_the_two_make_commands_first():
    first = _blocks("bash")[0]
    assert [ln.split("#")[0].strip() for ln in first.splitlines() if ln.strip().startswith("make")] == [
        "make demo",
        "make test",
    ]


@pytest.mark.slow
def test_usage_commands_run(tmp_path):
    usage = _blocks("bash")[1]
    commands = [ln.split("#")[0].strip() for ln in usage.splitlines() if ln.strip().startswith("oms ")]
    assert len(commands) >= 5
    for line in commands:
        args = shlex.split(line)[1:]
        args = [str(tmp_path / a) if a.startswith("runs/") else a for a in args]
        if args[0] == "train" and "--max-steps" not in args and "--resume" not in args:
            args += ["--max-steps", "3"]
        proc = run_oms(*args, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"


def test_python_example_runs(tmp_path):
    code = _blocks("python")[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= float(proc.stdout.strip().splitlines()[-1]) <= 1.0
