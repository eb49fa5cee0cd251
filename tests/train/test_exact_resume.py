"""Exact resume: 20 steps straight == 10 steps, then `oms train --resume` in a new process for 10 more."""

from __future__ import annotations

import json

import pytest

from oms_testing import ROOT, run_oms


@pytest.mark.slow
def test_resume_in_new_process_is_bitwise_equal(tmp_path):
    cfg = str(ROOT / "examples" / "mnist_cnn.yaml")
    straight = run_oms("train", cfg, "--out", str(tmp_path / "a"), "--max-steps", "20", "--json", check=True)
    first = run_oms("train", cfg, "--out", str(tmp_path / "b"), "--max-steps", "10", "--json", check=True)
    second = run_oms("train", "--resume", str(tmp_path / "b"), "--max-steps", "20", "--json", check=True)
    a, b1, b2 = (json.loads(p.stdout) for p in (straight, first, second))
    assert b1["steps"] == 10 and b2["steps"] == 20 and a["steps"] == 20
    assert b1["params_sha256"] != a["params_sha256"]
    assert b2["params_sha256"] == a["params_sha256"]
    assert b2["samples_seen"] == a["samples_seen"] == 20 * 64
    assert b2["status"] == a["status"] == "stopped"
    # the run directory has everything the summary promises
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    for key in (
        "status",
        "steps",
        "final_loss",
        "eval",
        "params_sha256",
        "samples_seen",
        "step_time_s",
        "world_size",
        "recoveries",
    ):
        assert key in summary
    assert summary["recoveries"] == [] and summary["world_size"] == 1
    assert 0.0 <= summary["eval"]["accuracy"] <= 1.0 and summary["step_time_s"]["median"] > 0
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20]
    ev = run_oms("eval", str(tmp_path / "b"), "--json", check=True)
    assert json.loads(ev.stdout)["accuracy"] == pytest.approx(summary["eval"]["accuracy"])
