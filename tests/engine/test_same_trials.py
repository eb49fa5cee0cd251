"""The engine changes where work runs, never what it computes: a search or an ablation run on openYuanrong
(local mode) writes the same trials as on Ray, apart from timings; a multi-worker training refuses
openYuanrong's local mode before starting anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oms_testing import run_oms

pytestmark = [pytest.mark.distributed]
pytest.importorskip("yr", reason="openYuanrong's SDK (the yuanrong extra, part of the test extra)")

TIMINGS = {"duration_s", "seconds", "step_time_s"}  # wall-clock measurements


def _rows(path: Path) -> list[dict]:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMINGS}
        return x

    return [strip(json.loads(ln)) for ln in path.read_text().splitlines() if ln.strip()]


def _both(tmp_path: Path, *args: str) -> dict[str, Path]:
    outs = {}
    for engine in ("ray", "yuanrong"):
        out = tmp_path / engine
        proc = run_oms(*args, "--workers", "2", "--engine", engine, "--out", str(out), timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[engine] = out
    return outs


def test_nb201_search_writes_the_same_trials_on_both_engines(tmp_path):
    outs = _both(tmp_path, "search", "--space", "nb201", "--budget", "30")  # 100 in docs/engines.md
    ray, yr = (_rows(outs[e] / "trials.jsonl") for e in ("ray", "yuanrong"))
    assert len(ray) == 30 and ray == yr
    meta = {e: json.loads((outs[e] / "search.json").read_text()) for e in outs}
    assert meta["ray"]["engine"] == "ray" and meta["yuanrong"]["engine"] == "yuanrong"
    # the engine is how a search runs, not what it computes: resuming on the other engine continues it (the
    # Ray-made search resumed on openYuanrong: no third Ray cluster to start)
    args = ("--budget", "32", "--workers", "2", "--engine", "yuanrong", "--out", str(outs["ray"]))
    proc = run_oms("search", "--space", "nb201", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = _rows(outs["ray"] / "trials.jsonl")
    assert len(resumed) == 32 and resumed[:30] == ray


@pytest.mark.slow
def test_cnn_search_writes_the_same_trials_on_both_engines(tmp_path):
    # each trial trains in a fresh process, started from a Ray worker process or an openYuanrong thread
    outs = _both(tmp_path, "search", "--space", "cnn", "--dataset", "digits", "--budget", "2", "--set", "steps=3")
    ray, yr = (_rows(outs[e] / "trials.jsonl") for e in ("ray", "yuanrong"))
    assert len(ray) == 2 and all(r["status"] == "ok" for r in ray) and ray == yr


@pytest.mark.heavy
def test_ablation_writes_the_same_runs_on_both_engines(tmp_path):
    args = ["--base", "default", "--factor", "maxpool", "--repeats", "2", "--dataset", "digits", "--steps", "3"]
    outs = _both(tmp_path, "ablate", *args)
    ray, yr = (_rows(outs[e] / "runs.jsonl") for e in ("ray", "yuanrong"))
    assert len(ray) == 4 and all(r["status"] == "ok" for r in ray) and ray == yr


def test_multi_worker_training_refuses_local_mode_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("YR_SERVER_ADDRESS", raising=False)
    proc = run_oms("train", "examples/mnist_cnn.yaml", "--workers", "2", "--engine", "yuanrong", "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "--engine" in line and "threads" in line and "--engine ray" in line
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_the_docs_example_runs(tmp_path):
    import re
    import shlex

    from oms_testing import ROOT

    (block,) = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "engines.md").read_text(), re.S)[:1]
    (line,) = [ln.split("  #")[0] for ln in block.splitlines() if ln.startswith("oms ")]
    args = [str(tmp_path / a) if a.startswith("runs/") else a for a in shlex.split(line)[1:]]
    proc = run_oms(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = Path(args[args.index("--out") + 1])
    assert (
        len(_rows(out / "trials.jsonl")) == 100
        and json.loads((out / "search.json").read_text())["engine"] == "yuanrong"
    )


def test_active_learning_seeds_on_openyuanrong_equal_the_sequential_run(tmp_path):
    from openmindspore.cli.main import main

    args = ["active", "--dataset", "digits", "--batch", "10", "--initial", "20", "--budget", "40", "--seeds", "2"]
    assert main([*args, "--out", str(tmp_path / "seq"), "--quiet"]) == 0
    assert main([*args, "--workers", "2", "--engine", "yuanrong", "--out", str(tmp_path / "yr"), "--quiet"]) == 0
    seq, yr = (_rows(tmp_path / d / "curve.jsonl") for d in ("seq", "yr"))
    assert len(seq) == 6 and seq == yr


def test_an_unreachable_openyuanrong_cluster_is_one_line_at_start(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_oms(
        "search", "--space", "nb201", "--budget", "4", "--workers", "2", "--engine", "yuanrong",
        "--out", str(tmp_path / "s"), env={"YR_SERVER_ADDRESS": f"127.0.0.1:{port}"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip() and "failed to detect" not in ln]
    assert line.startswith("oms search: error: YR_SERVER_ADDRESS=") and f"127.0.0.1:{port}" in line
    assert "openYuanrong" in line and "cannot connect" in line
