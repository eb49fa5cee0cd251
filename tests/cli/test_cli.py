"""The `oms` CLI: help with examples, datasets, and one clear line for every kind of bad input."""

from __future__ import annotations

import json

import pytest

from oms_testing import run_oms


def test_help_lists_commands_and_train_help_has_examples():
    top = run_oms("--help", check=True).stdout
    for cmd in ("train", "eval", "datasets"):
        assert cmd in top
    train_help = run_oms("train", "--help", check=True).stdout
    assert "examples:" in train_help and "--resume" in train_help and "--max-steps" in train_help


def test_datasets_json():
    rows = json.loads(run_oms("datasets", "--json", check=True).stdout)
    assert {"mnist5k", "digits"} <= {r["name"] for r in rows}


def _bad(tmp_path, yaml_text: str, *extra: str):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    return run_oms("train", str(cfg), "--out", str(tmp_path / "out"), "--quiet", *extra, timeout=120)


@pytest.mark.parametrize(
    "yaml_text,fragment",
    [
        ("dataset: cifar\n", "dataset='cifar' is invalid"),
        ("dataset: digits\nbatch_size: 0\n", "batch_size=0 is invalid"),
        ("dataset: digits\nmodel: {name: resnet}\n", "model.name='resnet' is invalid"),
        (
            "dataset: digits\nmodel: {name: cnn, layers: [{type: conv, channels: 4}, {type: maxpool, kernel: 4},"
            " {type: maxpool, kernel: 2}, {type: maxpool, kernel: 2}]}\n",
            "model.layers[3]",
        ),
        ("dataset: digits\nbatchsize: 3\n", "batchsize"),
        ("dataset: [unclosed\n", "valid YAML"),
        ("- just\n- a list\n", "a YAML mapping"),
        ("dataset: digits\noptimizer: {name: lion}\n", "optimizer.name='lion'"),
    ],
)
def test_bad_config_gets_one_clear_line_and_exit_2(tmp_path, yaml_text, fragment):
    proc = _bad(tmp_path, yaml_text)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_missing_config_and_bad_resume_dir(tmp_path):
    proc = run_oms("train", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "an existing YAML file" in proc.stderr
    (tmp_path / "notarun").mkdir()
    proc = run_oms("train", "--resume", str(tmp_path / "notarun"))
    assert proc.returncode == 2 and "config.yaml" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_oms("eval", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "run directory" in proc.stderr


def test_existing_run_is_not_overwritten_and_max_steps_checked(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: synthetic\nbatch_size: 32\nsteps: 4\nmodel: {name: mlp, hidden: [8]}\n")
    out = tmp_path / "run"
    run_oms("train", str(cfg), "--out", str(out), "--quiet", check=True)
    before = (out / "summary.json").read_text()
    proc = run_oms("train", str(cfg), "--out", str(out), "--quiet")
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (out / "summary.json").read_text() == before
    proc = run_oms("train", "--resume", str(out), "--max-steps", "2")
    assert proc.returncode == 2 and "--max-steps=2" in proc.stderr


def test_train_routes_detection_configs_to_yolos_finetuning(tmp_path):
    from oms_testing import ROOT

    proc = run_oms(
        "train",
        str(ROOT / "examples" / "yolos_synthetic.yaml"),
        "--max-steps",
        "2",
        "--out",
        str(tmp_path / "det"),
        "--json",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 2 and "map50" in summary["eval"]
    assert (tmp_path / "det" / "summary.json").is_file()
