"""Issue 15's judge: a user project outside the package — its own ``nn.Cell`` module, a CSV and an image
folder made here — trains with ``oms train cfg.yaml --workers 2 --kill-worker-at K:1`` run from the
project's directory, recovering with no lost step, bitwise equal to the uninterrupted run; ``--resume``
is exact; ``oms eval`` applies the saved preprocessing."""

from __future__ import annotations

import json

import pytest
from userdata_testing import make_project

from oms_testing import run_oms


def _train(cwd, *args):
    proc = run_oms("train", *args, "--json", cwd=cwd, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.distributed
def test_user_project_two_workers_recover_bitwise(tmp_path):
    proj = make_project(tmp_path / "proj")
    # from the parent folder: the code is found beside the config and reaches the Ray workers only by
    # being shipped (runtime_env py_modules), not through the workers' working directory
    ref = _train(tmp_path, "proj/csv.yaml", "--workers", "2", "--spares", "0", "--out", "proj/runs/ref")
    kill = _train(proj, "csv.yaml", "--workers", "2", "--kill-worker-at", "5:1", "--out", "runs/kill")
    assert ref["steps"] == kill["steps"] == 10 and ref["recoveries"] == []
    (rec,) = kill["recoveries"]
    assert rec["steps_lost"] == 0 and rec["failed_ranks"] == [1]
    assert kill["params_sha256"] == ref["params_sha256"]
    assert kill["duplicate_samples"] == kill["missed_samples"] == 0
    run = proj / "runs" / "kill"
    assert json.loads((run / "code.json").read_text())["code_path"] == [str(proj)]
    pre = json.loads((run / "preprocess.json").read_text())
    assert pre["kind"] == "tabular" and pre["class_names"] == ["setosa", "versicolor", "virginica"]


@pytest.mark.slow
def test_user_project_resume_is_exact_and_eval_uses_the_saved_preprocessing(tmp_path):
    proj = make_project(tmp_path / "proj")
    straight = _train(proj, "images.yaml", "--out", "runs/a")
    first = _train(proj, "images.yaml", "--out", "runs/b", "--max-steps", "3")
    assert first["params_sha256"] != straight["params_sha256"]
    second = _train(proj, "--resume", "runs/b")
    assert second["steps"] == 8 and second["params_sha256"] == straight["params_sha256"]
    # evaluated from elsewhere: the run finds its code (code.json) and its preprocessing (preprocess.json)
    ev = run_oms("eval", str(proj / "runs" / "b"), "--json", cwd=tmp_path, check=True)
    assert json.loads(ev.stdout)["accuracy"] == pytest.approx(second["eval"]["accuracy"])
    new = run_oms("eval", str(proj / "runs" / "b"), "--data", str(proj / "photos"), "--json", cwd=tmp_path, check=True)
    res = json.loads(new.stdout)
    assert res["samples"] == 36 and 0.0 <= res["accuracy"] <= 1.0
