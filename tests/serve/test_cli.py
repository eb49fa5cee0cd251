"""``oms serve`` and ``oms predict`` as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import requests

from oms_testing import ROOT, free_port, kill_session, run_oms


def test_serve_bad_path_is_one_line_and_exit_2(tmp_path):
    p = run_oms("serve", str(tmp_path / "missing"), timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "oms serve: error:" in lines[0] and "missing" in lines[0], p.stderr
    (tmp_path / "notrun").mkdir()
    p = run_oms("serve", str(tmp_path / "notrun"), timeout=120)
    assert p.returncode == 2 and "config.yaml" in p.stderr


def test_serve_bad_batching_flag_exit_2():
    p = run_oms("serve", "builtin:identity", "--max-batch", "0", timeout=120)
    assert p.returncode == 2 and "--max-batch" in p.stderr
    p = run_oms("serve", "builtin:identity", "--frontends", "0", timeout=120)
    assert p.returncode == 2 and "--frontends" in p.stderr


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--auth-token-file", "/nonexistent/token"], ["--auth-token-file=", "an existing file"]),
        (["--tls-cert", __file__], ["tls_cert and tls_key are given together"]),
        (["--max-request-mb", "0"], ["--max-request-mb=0", "greater than 0"]),
        (["--request-timeout-s", "-1"], ["--request-timeout-s=-1"]),
        (["--grpc-port", "8000", "--port", "8000"], ["grpc_port differs from port"]),
    ],
)
def test_serve_security_and_limit_flags_are_checked_before_anything_starts(flags, words):
    p = run_oms("serve", "builtin:identity", *flags, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_serve_misspelled_option_and_several_bad_flags_are_one_line_each():
    p = run_oms("serve", "builtin:identity?dimm=3", timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "dimm='3'" in lines[0] and "did you mean dim?" in lines[0], (
        p.stderr
    )
    p = run_oms("serve", "builtin:identity", "--max-batch", "0", "--max-delay-ms", "-1", "--replicas", "0", timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "3 problems" in lines[0], p.stderr
    assert all(f"{flag}=" in lines[0] for flag in ("--max-batch", "--max-delay-ms", "--replicas")), p.stderr


def test_predict_bad_input_file_exit_2(tmp_path):
    p = run_oms("predict", "http://127.0.0.1:9", "--model", "m", "--input", str(tmp_path / "x.npy"), timeout=120)
    assert p.returncode == 2 and "--input" in p.stderr


@pytest.mark.distributed
@pytest.mark.slow
def test_oms_serve_end_to_end_with_token_and_grpc_then_sigterm_drains_and_exits(tmp_path):
    port, gport = free_port(), free_port()
    (tmp_path / "token").write_text("tok-123\n")
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openmindspore.cli.main",
            "serve",
            "builtin:identity?dim=3",
            "--name",
            "echo",
            "--port",
            str(port),
            "--grpc-port",
            str(gport),
            "--auth-token-file",
            str(tmp_path / "token"),
            "--json",
            "--num-cpus",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the model is loaded and routed
        assert line, proc.stderr.read() if proc.poll() is not None else "no output"
        info = json.loads(line)
        assert info["url"] == f"http://127.0.0.1:{port}" and info["model"] == "echo" and info["version"] == "1"
        assert info["frontends"] == 1 and info["grpc"] == f"127.0.0.1:{gport}"
        assert requests.get(info["url"] + "/v2/health/ready", timeout=10).status_code == 200  # open
        r = requests.get(info["url"] + "/v2/models/echo", timeout=10)
        assert r.status_code == 401 and "Authorization" in r.json()["error"]
        np.save(tmp_path / "x.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
        tok = ("--auth-token-file", str(tmp_path / "token"))
        for url in (info["url"], f"grpc://{info['grpc']}"):
            p = run_oms("predict", url, "--model", "echo", "--input", str(tmp_path / "x.npy"), *tok, timeout=120)
            assert p.returncode == 0, p.stderr
            assert "y float32 [2, 3]: [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]" in p.stdout
        p = run_oms("predict", f"grpc://{info['grpc']}", "--model", "echo", "--input", str(tmp_path / "x.npy"))
        assert p.returncode == 2 and "UNAUTHENTICATED" in p.stderr and "authorization" in p.stderr, p.stderr
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        assert rc == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            kill_session(proc.pid)
            proc.wait()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
