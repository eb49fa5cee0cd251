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


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


@pytest.mark.slow
@pytest.mark.distributed
def test_your_model_your_data_example_runs_from_a_user_folder(tmp_path):
    """The section's files are those of examples/user_project; its commands run as written, from a copy of
    that folder outside the repository."""
    import json
    import shutil

    section = _section("Your model, your data")
    nets, api = re.findall(r"```python\n(.*?)```", section, re.S)
    (config,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (commands,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    example = ROOT / "examples" / "user_project"
    assert (example / "nets.py").read_text() == nets and (example / "flowers.yaml").read_text() == config
    shutil.copytree(example, tmp_path / "examples" / "user_project")
    cwd = tmp_path
    for line in commands.splitlines():
        args = shlex.split(line.split("  #")[0])
        if args[0] == "cd":
            cwd = cwd / args[1]
            continue
        if args[0] == "python":
            proc = subprocess.run([sys.executable, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120)
        else:
            proc = run_oms(*args[1:], cwd=cwd, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    dp = json.loads((cwd / "runs" / "flowers-dp" / "summary.json").read_text())
    assert dp["recoveries"][0]["steps_lost"] == 0 and dp["steps"] == 100
    resumed = json.loads((cwd / "runs" / "flowers" / "summary.json").read_text())
    assert resumed["steps"] == 100 and resumed["eval"]["accuracy"] > 0.5  # 3 classes: chance is 1/3
    proc = subprocess.run([sys.executable, "-c", api], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 0.0 <= float(proc.stdout.strip().splitlines()[-1]) <= 1.0
