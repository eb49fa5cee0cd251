"""YOLOS fine-tuning through the same trainer from the CLI: the progress bar, ``--resume`` bitwise exact, and
``--workers 2`` with a killed worker recovered with no lost step, bitwise equal to the uninterrupted run."""

from __future__ import annotations

import json

import pytest
from detection_testing import tiny_config, write_config

from oms_testing import run_oms


def _train(cwd, *args, json_out=True):
    proc = run_oms("train", *args, *(["--json"] if json_out else []), cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout) if json_out else proc


@pytest.mark.slow
def test_progress_bar_checkpoints_and_exact_resume(tmp_path):
    cfg = write_config(tmp_path / "det.yaml", tiny_config(steps=6))
    proc = _train(tmp_path, str(cfg), "--out", "a", "--seed", "3", json_out=False)
    bar = proc.stderr
    assert "train synthetic_detection" in bar and "6/6" in bar and "ETA" in bar and "loss" in bar
    straight = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert straight["status"] == "completed" and straight["steps"] == 6
    ckpts = sorted(p.name for p in (tmp_path / "a" / "checkpoints").glob("*.safetensors"))
    assert ckpts == ["step_00000002.safetensors", "step_00000004.safetensors", "step_00000006.safetensors"]
    first = _train(tmp_path, str(cfg), "--out", "b", "--seed", "3", "--max-steps", "3")
    assert first["steps"] == 3 and first["params_sha256"] != straight["params_sha256"]
    second = _train(tmp_path, "--resume", "b")
    assert second["steps"] == 6 and second["params_sha256"] == straight["params_sha256"]
    assert second["val"] == straight["val"] and second["eval"] == straight["eval"]
    other_seed = _train(tmp_path, str(cfg), "--out", "c", "--max-steps", "3")
    assert other_seed["params_sha256"] != first["params_sha256"]  # --seed reaches the model and the flips


# heavy: the detection step's exactness over workers is test_detection.py::test_the_step_is_the_detr_loss_and_sums_
# exactly_over_workers and elastic recovery is task-agnostic (tests/elastic); this end-to-end run is `make test-all`
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.distributed
def test_two_workers_recover_a_killed_worker_bitwise(tmp_path):
    cfg = write_config(tmp_path / "det.yaml", tiny_config(steps=6))
    ref = _train(tmp_path, str(cfg), "--workers", "2", "--out", "ref")
    kill = _train(tmp_path, str(cfg), "--workers", "2", "--kill-worker-at", "4:1", "--out", "kill")
    assert ref["steps"] == kill["steps"] == 6 and ref["recoveries"] == []
    (rec,) = kill["recoveries"]
    assert rec["steps_lost"] == 0 and rec["failed_ranks"] == [1]
    assert kill["params_sha256"] == ref["params_sha256"]
    assert kill["duplicate_samples"] == kill["missed_samples"] == 0
    assert kill["val"] == ref["val"]
