"""``oms active`` end to end: outputs, exact resume after a kill, the file oracle, bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from oms_testing import run_oms
from openmindspore.cli.main import main
from openmindspore.data import load_dataset

SMALL = ["--dataset", "digits", "--batch", "10", "--initial", "20"]


def _state(out: Path, seed: int = 0) -> dict:
    return json.loads((out / f"seed_{seed}" / "state.json").read_text())


def test_run_writes_everything_and_the_same_out_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["active", *SMALL, "--budget", "40", "--seeds", "2", "--target-accuracy", "0.9", "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    for key in ("full_pool_accuracy", "labels_to_95pct_full", "labels_to_99pct_full", "labels_at_stop",
                "accuracy_at_stop", "abstention", "stopping", "per_seed", "curve"):  # fmt: skip
        assert key in s
    assert s["status"] == "done" and s["seeds"] == [0, 1] and s["labels_at_stop"] == 40
    assert 0.9 < s["full_pool_accuracy"] <= 1.0 and len(s["per_seed"]) == 2
    rows = [json.loads(ln) for ln in (out / "curve.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["labels"]) for r in rows] == [(0, 20), (0, 30), (0, 40), (1, 20), (1, 30), (1, 40)]
    for r in rows:
        assert {"accuracy", "ece", "coverage", "kappa", "max_uncertainty", "stop"} <= set(r)
    for png in ("curve.png", "reliability.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "curve.jsonl").read_text()
    assert main(["active", *SMALL, "--budget", "40", "--seeds", "2", "--target-accuracy", "0.9", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert (out / "curve.jsonl").read_text() == before  # nothing left to do: same rows, none added
    assert "2 seed(s), done" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_mid_round_then_resume_asks_for_the_same_labels(tmp_path):
    args = [*SMALL, "--strategy", "badge", "--budget", "60", "--quiet"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert run_oms("active", *args, "--out", str(ref)).returncode == 0
    p = run_oms("active", *args, "--out", str(killed), "--kill-at-round", "3")
    assert p.returncode == -9  # SIGKILLed after choosing round 3's queries, before saving them
    mid = _state(killed)
    assert mid["round"] == 2 and len(mid["labeled"]) == 30 and len(mid["pending"]) == 10
    assert run_oms("active", *args, "--out", str(killed)).returncode == 0
    a, b = _state(ref), _state(killed)
    assert a["labeled"] == b["labeled"] and a["labels"] == b["labels"]
    assert [r["accuracy"] for r in a["rows"]] == [r["accuracy"] for r in b["rows"]]


def _answer(out: Path, path: Path, only: int | None = None) -> int:
    """Answer the open queries with the true labels (the first ``only`` of them)."""
    y = load_dataset("digits").y_train
    ids = [json.loads(ln)["id"] for ln in (out / "queries.jsonl").read_text().splitlines()]
    ids = ids[:only] if only is not None else ids
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows([i, int(y[i])] for i in ids)
    return len(ids)


def test_file_oracle_round_trip_matches_the_simulated_oracle(tmp_path, capsys):
    out, sim = tmp_path / "human", tmp_path / "sim"
    args = ["active", *SMALL, "--budget", "30", "--quiet"]
    assert main([*args, "--out", str(sim)]) == 0
    assert main([*args, "--oracle", "files", "--out", str(out)]) == 0
    assert "waiting for 20 answers" in capsys.readouterr().out
    first = [json.loads(ln) for ln in (out / "queries.jsonl").read_text().splitlines()]
    assert len(first) == 20 and all(q["seeds"] == [0] for q in first)
    assert (out / first[0]["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    answers = tmp_path / "answers.csv"
    _answer(out, answers, only=12)  # a partial answer: the run keeps waiting for the rest
    assert main([*args, "--oracle", "files", "--out", str(out), "--labels", str(answers)]) == 0
    assert "waiting for 20 answers" in capsys.readouterr().out
    _answer(out, answers)
    assert main([*args, "--oracle", "files", "--out", str(out), "--labels", str(answers)]) == 0
    assert "waiting for 10 answers" in capsys.readouterr().out  # round 1's queries
    _answer(out, answers)
    assert main([*args, "--oracle", "files", "--out", str(out), "--labels", str(answers), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"
    assert (out / "queries.jsonl").read_text() == ""
    a, b = _state(sim), _state(out)
    assert a["labeled"] == b["labeled"] and [r["accuracy"] for r in a["rows"]] == [r["accuracy"] for r in b["rows"]]


def _listing(d: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in d.rglob("*")} if d.exists() else {}


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--strategy", "uncertainty"], "strategy='uncertainty'"),
        (["--strategy", "margn"], "did you mean margin?"),
        (["--model", "resnet"], "model='resnet'"),
        (["--dataset", "imagenet"], "dataset='imagenet'"),
        (["--dataset", "diabetes"], "a classification dataset"),
        (["--batch", "5000"], "--batch=5000"),
        (["--budget", "10"], "--budget=10"),
        (["--strategy", "bald"], "--ensemble 5"),
        (["--seeds", "0"], "seeds=0"),
        (["--labels", "x.csv"], "--oracle files"),
        (["--folds", "1"], "0 (no cross-fitting) or at least 2"),
        (["--init", "typicl"], "did you mean typical?"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "x"
    assert main(["active", *SMALL, "--budget", "40", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("oms active: error:") and needle in err, err
    assert not out.exists()


def test_corrupt_state_and_bad_answers_change_nothing(tmp_path, capsys):
    out = tmp_path / "h"
    base = ["active", *SMALL, "--budget", "30", "--oracle", "files", "--quiet", "--out", str(out)]
    assert main(base) == 0
    capsys.readouterr()
    ids = [json.loads(ln)["id"] for ln in (out / "queries.jsonl").read_text().splitlines()]
    asked = set(ids)
    stranger = next(i for i in range(1000) if i not in asked)
    cases = {
        "unknown id": (f"id,label\n{ids[0]},1\n{stranger},3\n", f"id={stranger}"),
        "bad label": (f"id,label\n{ids[0]},10\n", "label=10"),
        "not a number": (f"id,label\n{ids[0]},seven\n", "integer id and label"),
        "no header": (f"{ids[0]},1\n", "header row id,label"),
    }
    for text, needle in cases.values():
        before = _listing(out)
        csv_path = tmp_path / "a.csv"
        csv_path.write_text(text)
        assert main([*base, "--labels", str(csv_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
        assert _listing(out) == before and not (out / "labels.json").exists()
    # another run's options in the same --out
    assert main(["active", *SMALL, "--budget", "40", "--oracle", "files", "--out", str(out)]) == 2
    assert "budget: 30 -> 40" in capsys.readouterr().err
    # a torn state file
    (out / "seed_0" / "state.json").write_text('{"seed": 0, "lab')
    before = _listing(out)
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err and _listing(out) == before
    (out / "state.json").write_text("[]")
    assert main(base) == 2 and "corrupt" in capsys.readouterr().err


def test_report_overlays_runs(tmp_path, capsys):
    a, b, cmp_dir = tmp_path / "a", tmp_path / "b", tmp_path / "cmp"
    for d, strategy in ((a, "random"), (b, "entropy")):
        assert main(["active", *SMALL, "--budget", "30", "--strategy", strategy, "--quiet", "--out", str(d)]) == 0
    capsys.readouterr()
    assert main(["active", "--report", str(a), str(b), "--report-out", str(cmp_dir)]) == 0
    text = capsys.readouterr().out
    assert "digits logreg random" in text and "digits logreg entropy" in text
    assert (cmp_dir / "curve.png").stat().st_size > 5000
    assert main(["active", "--report", str(tmp_path / "nothing")]) == 2
    assert os.path.exists(a / "summary.json")


def test_file_oracle_merges_the_queries_of_several_seeds(tmp_path, capsys):
    out = tmp_path / "two"
    assert (
        main(["active", *SMALL, "--budget", "30", "--seeds", "2", "--oracle", "files", "--quiet", "--out", str(out)])
        == 0
    )
    qs = [json.loads(ln) for ln in (out / "queries.jsonl").read_text().splitlines()]
    asked = {s: set(_state(out, s)["pending"]) for s in (0, 1)}
    assert {q["id"] for q in qs} == asked[0] | asked[1] and len(qs) == len({q["id"] for q in qs})
    assert all(q["seeds"] == [s for s in (0, 1) if q["id"] in asked[s]] for q in qs)
    capsys.readouterr()


def test_no_cross_fitting_means_no_temperature_and_nothing_certified(tmp_path, capsys):
    out = tmp_path / "nofit"
    assert main(["active", *SMALL, "--budget", "30", "--folds", "0", "--init", "typical", "--quiet", "--json",
                 "--out", str(out)]) == 0  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s["status"] == "done" and s["abstention"]["certified"] == [False]
    for r in _state(out)["rows"]:
        assert r["temperature"] == 1.0 and r["cv_accuracy"] is None and r["calibration_labels"] == 0
        assert not r["certified"] and r["more_labels_needed"] is None and r["ece"] == pytest.approx(r["ece_raw"])


def test_spread_alpha_is_a_run_option_and_a_run_from_before_it_resumes(tmp_path, capsys):
    args = [*SMALL, "--budget", "20", "--folds", "0", "--semi-supervised", "--quiet", "--json"]
    out = tmp_path / "alpha"
    assert main(["active", *args, "--spread-alpha", "0.8", "--out", str(out)]) == 0
    assert json.loads((out / "state.json").read_text())["config"]["spread_alpha"] == 0.8
    old = tmp_path / "old"
    assert main(["active", *args, "--out", str(old)]) == 0
    manifest = json.loads((old / "state.json").read_text())
    del manifest["config"]["spread_alpha"]  # written before the option existed: it ran with the default
    (old / "state.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["active", *args, "--out", str(old)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"
    assert main(["active", *args, "--spread-alpha", "0.5", "--out", str(old)]) == 2
    assert "spread_alpha: 0.2 -> 0.5" in capsys.readouterr().err


def test_a_scikit_learn_run_resumes_whatever_the_mindspore_options_say(tmp_path, capsys):
    args = [*SMALL, "--budget", "20", "--folds", "0", "--quiet"]
    out = tmp_path / "old"
    assert main(["active", *args, "--out", str(out)]) == 0
    manifest = json.loads((out / "state.json").read_text())
    assert manifest["config"]["min_steps"] == 300
    manifest["config"].update(min_steps=100, lr=0.01)  # e.g. a run from before min_steps' default became 300
    (out / "state.json").write_text(json.dumps(manifest))
    assert main(["active", *args, "--out", str(out)]) == 0
    # a MindSpore learner reads them: on a cnn run the same options are named
    manifest["config"]["model"] = "cnn"
    (out / "state.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["active", *args, "--model", "cnn", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "min_steps: 100 -> 300" in err and "lr: 0.01 -> 0.001" in err
