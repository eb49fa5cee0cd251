"""``oms features`` end to end: ranking.json, selected.json and importance.png; --inject's columns are
dropped and named; an mlp run directory is ranked (and refused for selection)."""

import json

import pytest

from oms_testing import run_oms
from openmindspore.cli.main import main


def test_inject_select_construct_writes_the_three_files(tmp_path):
    out = tmp_path / "wine"
    proc = run_oms(
        "features", "--dataset", "wine", "--model", "logreg", "--select", "--construct", "--inject",
        "--repeats", "3", "--out", str(out), "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sel = json.loads(proc.stdout)  # --json: one object on stdout
    ranking = json.loads((out / "ranking.json").read_text())
    assert json.loads((out / "selected.json").read_text())["selected"] == sel["selected"]
    assert (out / "importance.png").stat().st_size > 5000
    rows = {r["name"]: r for r in ranking["features"]}
    assert {"injected_noise", "injected_copy", "injected_proxy"} <= set(rows)
    for r in ranking["features"]:
        assert (
            r["status"] == "kept"
            or r["status"] == "dropped"
            or r["status"].split(":")[0]
            in (
                "proxy_of",
                "constructed",
            )
        )
        lo, hi = r["conditional"]["ci95"]
        assert lo <= r["conditional"]["importance"] <= hi
        assert ("marginal" in r) != r["status"].startswith("constructed:")
    source = rows["injected_copy"]["injected"]["source"]
    assert rows["injected_noise"]["status"] == "dropped"
    assert rows["injected_copy"]["status"] == f"proxy_of:{source}"
    assert not {"injected_noise", "injected_copy", "injected_proxy"} & set(sel["selected"])
    assert sel["n_features"]["all"] == 16 and sel["n_features"]["selected"] == len(sel["selected"]) < 16
    assert set(sel["test_scores"]) >= {"all", "selected", "constructed"}
    assert ranking["dataset"] == "wine" and ranking["loss"] == "log loss" and ranking["seeds"] == 1


def test_several_seeds_aggregate(tmp_path, capsys):
    out = tmp_path / "iris"
    assert main(["features", "--dataset", "iris", "--seeds", "2", "--repeats", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "petal" in text and "wrote" in text
    ranking = json.loads((out / "ranking.json").read_text())
    assert ranking["seeds"] == 2 and all(sum(r["statuses"].values()) == 2 for r in ranking["features"])
    assert json.loads((out / "selected.json").read_text())["test_scores"]["all"]["per_seed"].__len__() == 2


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from openmindspore.train import config_from_dict, train

    run = tmp_path_factory.mktemp("runs") / "wine-mlp"
    cfg = {"dataset": "wine", "model": {"name": "mlp", "hidden": [16]}, "steps": 60, "batch_size": 32}
    train(config_from_dict(cfg), out_dir=run)
    return run


def test_mlp_run_directory_is_ranked_on_its_held_out_rows(mlp_run, tmp_path, capsys):
    out = tmp_path / "mlp"
    assert main(["features", "--model", str(mlp_run), "--repeats", "2", "--out", str(out)]) == 0
    ranking = json.loads((out / "ranking.json").read_text())
    assert ranking["dataset"] is None and len(ranking["features"]) == 13
    assert max(r["marginal"]["ci95"][0] for r in ranking["features"]) > 0  # the trained MLP uses its inputs
    assert json.loads((out / "selected.json").read_text())["test_scores"] == {}
    capsys.readouterr()
    assert main(["features", "--model", str(mlp_run), "--select", "--out", str(out)]) == 2
    assert "a run directory is a fitted model" in capsys.readouterr().err


def test_run_directory_errors(tmp_path, capsys):
    from openmindspore.train import RunDir

    RunDir.create(tmp_path / "fresh", {"dataset": "wine", "model": {"name": "mlp"}, "steps": 5})
    assert main(["features", "--model", str(tmp_path / "fresh"), "--out", str(tmp_path / "o")]) == 2
    assert "expected a fitted model" in capsys.readouterr().err
    RunDir.create(tmp_path / "cnn", {"dataset": "digits", "model": {"name": "cnn"}, "steps": 5})
    assert main(["features", "--model", str(tmp_path / "cnn"), "--out", str(tmp_path / "o")]) == 2
    assert "an mlp run directory (this run trains 'cnn')" in capsys.readouterr().err


def test_tolerance_reaches_the_selection_and_is_recorded(tmp_path, capsys):
    kept = {}
    for tol in ("1", "0"):
        out = tmp_path / f"tol{tol}"
        argv = ["features", "--dataset", "diabetes", "--model", "ridge", "--select", "--repeats", "2"]
        assert main([*argv, "--tolerance", tol, "--out", str(out), "--json"]) == 0
        sel = json.loads((out / "selected.json").read_text())
        assert sel["tolerance"] == float(tol)
        kept[tol] = sel["n_features"]["selected"]
    capsys.readouterr()
    assert kept["0"] > kept["1"]  # no loss allowed: more columns (seed 0: 6 vs 3 of 10)
