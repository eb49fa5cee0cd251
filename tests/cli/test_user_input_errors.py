"""Issue 15's bad-input list through ``oms train``: each a one-line error naming the field, the value and
the fix, exit code 2, nothing written to ``--out`` (also on the elastic path, before Ray starts)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from userdata_testing import make_project

from oms_testing import run_oms

CSV = "dataset: {format: csv, path: flowers.csv, label: species}\n"

CASES = [
    (CSV + "model: {class_path: broken.Net}\n", "model.class_path='broken.Net'", "No module named 'nosuch_dependency'"),
    (CSV + "model: {class_path: nets.Helper}\n", "model.class_path='nets.Helper'", "a mindspore.nn.Cell subclass"),
    (
        CSV + "model: {class_path: nets.TinyNet, init_args: {hiden: 3}}\n",
        "model.init_args={'hiden': 3}",
        "unexpected keyword argument 'hiden'",
    ),
    ("dataset: {format: csv, path: nofile.csv, label: species}\n", "dataset.path=", "an existing CSV file"),
    ("dataset: {format: csv, path: flowers.csv, label: specie}\n", "dataset.label='specie'", "did you mean species?"),
    (
        "dataset: {format: csv, path: flowers.csv, label: species, features: [petals]}\n",
        "dataset.features='petals'",
        "a column of flowers.csv",
    ),
    ("dataset: {format: csv, path: one_class.csv, label: y}\n", "dataset.label='y'", "at least 2 classes"),
    ("dataset: {format: imagefolder, path: mixed}\n", "dataset.image_size=None", "add image_size: [8, 8]"),
    (
        CSV + "model: {class_path: nets.TinyNet, init_args: {num_classes: 10}}\n",
        "model='nets.TinyNet'",
        "3 logits, one per class of flowers.csv (3 classes) per sample",
    ),
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    from PIL import Image

    proj = make_project(tmp_path / "proj")
    with open(proj / "nets.py", "a") as f:
        f.write("\n\nclass Helper:\n    pass\n")
    (proj / "broken.py").write_text("import nosuch_dependency\n")
    (proj / "one_class.csv").write_text("a,b,y\n1,2,x\n3,4,x\n5,6,x\n")
    for cls, h in (("a", 8), ("b", 9)):
        (proj / "mixed" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((h, 8), np.uint8)).save(proj / "mixed" / cls / "1.png")
    monkeypatch.chdir(proj)
    monkeypatch.delenv("OMS_CODE_PATH", raising=False)  # the CLI publishes the code path in-process
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield proj
    for name in ("nets", "broken"):  # imported from this project's folder: not for the next test
        sys.modules.pop(name, None)


@pytest.mark.parametrize("yaml_text,field,fragment", CASES)
def test_bad_user_input_is_one_line_exit_2_nothing_written(project, capsys, ms_cpu, yaml_text, field, fragment):
    from openmindspore.cli.main import main

    (project / "bad.yaml").write_text(yaml_text)
    rc = main(["train", "bad.yaml", "--out", "runs/bad", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("oms train: error: "), err
    assert field in err and fragment in err, err
    assert not (project / "runs").exists()


def test_elastic_path_checks_before_starting_workers(project):
    (project / "bad.yaml").write_text(CASES[-1][0])
    proc = run_oms("train", "bad.yaml", "--workers", "2", "--out", "runs/bad", cwd=project, timeout=300)
    assert proc.returncode == 2 and CASES[-1][2] in proc.stderr and "Traceback" not in proc.stderr
    assert not (project / "runs").exists()
