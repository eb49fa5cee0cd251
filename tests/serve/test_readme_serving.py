"""The README's Serving commands run as written, in a copy of ``examples/`` outside the repository.

What they need first is made the way the README makes it: ``runs/digits`` by the Usage section's
``oms train examples/digits_mlp.yaml --out runs/digits`` and ``examples/user_project/runs/flowers`` by the
"Your model, your data" section's commands (both capped with ``--max-steps``). Then every line runs in order:
``cd DIR`` changes directory, ``python -c ...`` and ``oms ...`` must exit 0, ``oms serve ... &`` starts the
server in the background (the next lines run once it is ready), ``kill %1`` stops it with SIGTERM (it must
drain and exit 0). Ports 8000/8001 are replaced by free ones.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from oms_process import start_oms

from oms_testing import ROOT, free_port, kill_session, run_oms

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def bash_lines(text: str) -> list[str]:
    (block,) = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip()]


def run_line(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if args[0] == "python":
        return subprocess.run([sys.executable, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert args[0] == "oms", args
    return run_oms(*args[1:], cwd=cwd, timeout=600)


def test_readme_serving_commands_run(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    run_oms("train", "examples/digits_mlp.yaml", "--out", "runs/digits", "--max-steps", "20", cwd=tmp_path, check=True)
    project = tmp_path / "examples" / "user_project"
    make_csv = next(ln for ln in bash_lines(section("Your model, your data")) if ln.startswith("python -c"))
    assert run_line(shlex.split(make_csv), project).returncode == 0
    run_oms("train", "flowers.yaml", "--out", "runs/flowers", "--max-steps", "20", cwd=project, check=True)

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
