"""``oms search --space cnn`` and ``oms ablate`` take ``--dataset`` in the same forms as a config's
``dataset:``: a registered name, a YAML file (a spec or a whole config), or an inline mapping."""

from __future__ import annotations

import json

import pytest
from userdata_testing import write_image_folder

from oms_testing import run_oms
from openmindspore.cli._common import dataset_arg
from openmindspore.errors import ConfigError


def test_dataset_arg_forms(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "photos", per_class=2)
    (tmp_path / "data.yaml").write_text("format: imagefolder\npath: photos\n")
    (tmp_path / "train.yaml").write_text("dataset: {format: imagefolder, path: photos, image_size: 8}\nsteps: 3\n")
    assert dataset_arg("digits") == "digits"
    from_file = dataset_arg(str(tmp_path / "data.yaml"))
    assert from_file["format"] == "imagefolder" and from_file["path"] == str(tmp_path / "photos")
    assert dataset_arg(str(tmp_path / "train.yaml"))["image_size"] == [8, 8]
    monkeypatch.chdir(tmp_path)
    assert dataset_arg("{format: imagefolder, path: photos}")["path"] == str(tmp_path / "photos")
    with pytest.raises(ConfigError, match="an existing YAML/JSON file"):
        dataset_arg("nope.yaml")
    with pytest.raises(ConfigError, match="did you mean imagefolder"):
        dataset_arg("{format: imagefolders, path: photos}")


@pytest.mark.slow
def test_cnn_search_and_ablation_on_an_image_folder(tmp_path):
    write_image_folder(tmp_path / "photos", per_class=10, size=(8, 8))
    (tmp_path / "data.yaml").write_text("format: imagefolder\npath: photos\n")
    proc = run_oms(
        "search", "--space", "cnn", "--dataset", "data.yaml", "--budget", "1", "--set", "steps=2",
        "--set", "batch_size=8", "--out", "s", "--json", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["failed"] == 0 and 0.0 <= out["best"]["metrics"]["test"]["accuracy"] <= 1.0
    assert json.loads(out["config"]["dataset"])["path"] == str(tmp_path / "photos")
    proc = run_oms(
        "ablate", "--factor", "batchnorm", "--repeats", "2", "--steps", "2", "--batch-size", "8",
        "--dataset", "{format: imagefolder, path: photos}", "--out", "a", "--json", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(ln) for ln in (tmp_path / "a" / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    cfg = json.loads((tmp_path / "a" / "ablation.json").read_text())
    assert cfg["dataset"]["format"] == "imagefolder"


def test_datasets_show_checks_the_users_files(tmp_path, capsys, monkeypatch):
    from userdata_testing import write_flowers_csv

    from openmindspore.cli.main import main

    write_flowers_csv(tmp_path / "flowers.csv")
    monkeypatch.chdir(tmp_path)
    assert main(["datasets", "--show", "{format: csv, path: flowers.csv, label: species}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["task"] == "classification" and info["input_shape"] == [6]
    assert info["splits"] == {"train": 72, "val": 9, "test": 9} and info["classes"][0] == "setosa"
    assert main(["datasets", "--show", "{format: csv, path: flowers.csv, label: kind}"]) == 2
    assert "dataset.label='kind'" in capsys.readouterr().err
