"""The README's usage examples run as written (train commands capped with --max-steps to stay quick); the
blocks run once a session (readme_testing), and the Serving section serves what they trained (below). One
file, so that the README's runs are made once also when the suite runs on several xdist workers.

The Serving commands run as written, in the folder where the README's other blocks ran: ``runs/digits`` by
the Usage section's ``oms train examples/digits_mlp.yaml --out runs/digits`` (then ``--resume``) and
``examples/user_project/runs/flowers`` by the "Your model, your data" section's commands (a copy of the
folder outside the repository). Every line runs in order: ``cd DIR`` changes directory, ``python -c ...``
and ``oms ...`` must exit 0, ``oms serve ... &`` starts the server in the background (the next lines run
once it is ready), ``kill %1`` stops it with SIGTERM (it must drain and exit 0). Ports 8000/8001 are
replaced by free ones."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from oms_process import start_oms
from readme_testing import blocks, section, usage_commands

from oms_testing import ROOT, free_port, kill_session, run_oms


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
    # the line that kills a worker (run to its step + 3): the kill happened and cost no step
    (killed,) = [line for line in usage_commands() if "--kill-worker-at" in line]
    out = readme_usage.cwd / shlex.split(killed)[shlex.split(killed).index("--out") + 1]
    s = json.loads((out / "summary.json").read_text())
    assert len(s["recoveries"]) == 1 and s["recoveries"][0]["steps_lost"] == 0 and s["world_size"] == 2


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


def bash_lines(text: str) -> list[str]:
    (block,) = blocks("bash", text)
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip()]


def run_line(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if args[0] == "python":
        return subprocess.run([sys.executable, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert args[0] == "oms", args
    return run_oms(*args[1:], cwd=cwd, timeout=600)


@pytest.mark.slow
@pytest.mark.distributed
def test_readme_serving_commands_run(readme_usage, readme_user_project):
    tmp_path = readme_usage.cwd  # the README's runs/ (Usage) and examples/user_project/runs/ (Your model)
    assert readme_user_project.cwd == tmp_path / "examples" / "user_project"
    # what this section needs was made (a failure elsewhere in those blocks is tests/test_readme.py's to report)
    for made, block in (
        (tmp_path / "runs" / "digits", readme_usage),
        (readme_user_project.cwd / "runs" / "flowers", readme_user_project),
    ):
        assert (made / "summary.json").is_file(), (made, block.failures())

    lines = bash_lines(section("Serving"))
    assert any("--grpc-port" in ln for ln in lines) and any("--csv" in ln for ln in lines)
    assert any(ln.startswith("oms export") for ln in lines) and any("--binary" in ln for ln in lines)
    ports = {"8000": str(free_port()), "8001": str(free_port())}
    cwd, server = tmp_path, None
    try:
        for line in lines:
            for old, new in ports.items():
                line = line.replace(f":{old}", f":{new}").replace(f"--grpc-port {old}", f"--grpc-port {new}")
            args = shlex.split(line.rstrip("&"))
            if args[0] == "cd":
                cwd = cwd / args[1]
            elif args[0] == "kill":
                assert server is not None, line
                server.send_signal(signal.SIGTERM)
                assert server.wait(timeout=120) == 0, server.stderr.read()[-3000:]
                server = None
            elif line.endswith("&"):
                assert args[:2] == ["oms", "serve"] and server is None, line
                if "--port" not in args:
                    args += ["--port", ports["8000"]]
                server = start_oms(*args[1:], cwd=cwd, stdout=subprocess.DEVNULL)
                wait_ready(f"http://127.0.0.1:{ports['8000']}", server)
            else:
                p = run_line(args, cwd)
                assert p.returncode == 0, f"{line}\n{p.stdout[-1000:]}\n{p.stderr[-2000:]}"
                if "--csv" in args:  # one class name per row of the file
                    assert p.stdout.count("class_name BYTES [150]") == 1, p.stdout
                if "--binary" in args or "grpc://" in line:
                    assert "label int64 [4]" in p.stdout, p.stdout
        assert server is None, "the block leaves a server running"
        assert (tmp_path / "runs" / "digits" / "export" / "digits.mindir").is_file()
    finally:
        if server is not None and server.poll() is None:
            kill_session(server.pid)
            server.wait()


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else "exited"
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready within {timeout_s:.0f} s")
