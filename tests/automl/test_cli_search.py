"""``oms search``: runs, resumes, reports; bad input is one line and exit code 2."""

import json

import pytest

from openmindspore.cli.main import main


def test_search_then_report(tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(
            [
                "search",
                "--space",
                "nb201",
                "--budget",
                "12",
                "--strategy",
                "evolution",
                "--out",
                str(out),
                "--seed",
                "1",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["trials"] == 12 and res["best"]["metrics"]["val"]["accuracy"] > 0
    assert len((out / "trials.jsonl").read_text().splitlines()) == 12
    assert (
        main(
            [
                "search",
                "--space",
                "nb201",
                "--budget",
                "20",
                "--strategy",
                "evolution",
                "--out",
                str(out),
                "--seed",
                "1",
                "--quiet",
            ]
        )
        == 0
    )  # resumes and extends
    assert len((out / "trials.jsonl").read_text().splitlines()) == 20
    capsys.readouterr()
    assert main(["search", "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "20 ok" in text and "best: trial" in text
    png = (out / "best_so_far.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((out / "summary.json").read_text())
    curve = summary["best_so_far"]
    assert len(curve) == 20 and curve == sorted(curve) and curve[-1] == summary["best"]["score"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--space", "resnet", "--budget", "3"], "--space='resnet'"),
        (["--space", "nb201", "--budget", "0"], "--budget=0"),
        (["--space", "nb201", "--budget", "3", "--strategy", "bayes"], "--strategy='bayes'"),
        (["--space", "sklearn-classifier", "--dataset", "imagenet21k", "--budget", "3"], "dataset='imagenet21k'"),
        (["--space", "nb201", "--budget", "3", "--workers", "0"], "--workers=0"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "modle=1"], "'modle=1'"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "model"], "--strategy-option='model'"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "model=high"], "--strategy-option model='high'"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "model_after=2.5"], "model_after=2.5"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "average_repeats=1"], "average_repeats=1"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "model=1.5"], "'model': 1.5"),
        (["--space", "nb201", "--budget", "3", "--strategy-option", "warm={}"], "'warm={}'"),  # warm: --prior
        (["--space", "nb201", "--budget", "3", "--strategy", "evolution", "--strategy-option", "model=1"], "'model=1'"),
        (["--space", "nb201", "--budget", "3", "--strategy", "random", "--strategy-option", "x=1"], "options: none"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    assert main(["search", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("oms search: error:")


def test_unknown_strategy_option_names_the_allowed_ones(tmp_path, capsys):
    assert (
        main(["search", "--space", "nb201", "--budget", "3", "--out", str(tmp_path / "x"), "--strategy-option", "k=1"])
        == 2
    )
    err = capsys.readouterr().err
    assert "markov options: " in err and "model_kappa" in err and "epsilon" in err and "warm," not in err
    argv = ["--space", "nb201", "--budget", "3", "--strategy", "evolution", "--strategy-option", "pop=5"]
    assert main(["search", *argv, "--out", str(tmp_path / "y")]) == 2
    assert "evolution options: population, sample" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before anything is written


def test_strategy_options_reach_the_chain_and_the_log(tmp_path, capsys):
    base = ["search", "--space", "nb201", "--budget", "16", "--seed", "3", "--quiet"]
    opts = [
        "model=1.0",
        "model_after=8",
        "warmup=8",
        "local=0",
        "model_kappa=2",
        "model_acq=ei",
        "average_repeats=false",
    ]
    argv = [*base, *[a for o in opts for a in ("--strategy-option", o)]]
    assert main([*argv, "--out", str(tmp_path / "m")]) == 0
    assert main([*base, "--out", str(tmp_path / "d")]) == 0
    stored = json.loads((tmp_path / "m" / "search.json").read_text())["strategy_options"]
    assert stored == {
        "model": 1.0,
        "model_after": 8,
        "warmup": 8,
        "local": 0.0,
        "model_kappa": 2.0,
        "model_acq": "ei",
        "average_repeats": False,
    }
    model, default = (
        [json.loads(line) for line in (tmp_path / d / "trials.jsonl").read_text().splitlines()] for d in ("m", "d")
    )
    assert [t["spec"] for t in model[:8]] == [t["spec"] for t in default[:8]]  # same chain before model_after
    # from trial 8 on, model trials: one-hot tables on the chosen candidate, the floor (0.02) elsewhere
    assert all(max(s["probs"].values()) == pytest.approx(0.92) for t in model[8:] for s in t["steps"])
    assert not any(max(s["probs"].values()) == pytest.approx(0.92) for t in default for s in t["steps"])
    capsys.readouterr()
    # a resume must repeat the options (they are part of the search's configuration)
    assert main([*base, "--budget", "18", "--out", str(tmp_path / "m")]) == 2
    assert "strategy_options" in capsys.readouterr().err
    assert main([*argv, "--budget", "18", "--out", str(tmp_path / "m")]) == 0


def test_report_of_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["search", "--report", str(tmp_path / "nothing")]) == 2
    assert "search directory" in capsys.readouterr().err


def test_best_cnn_becomes_an_oms_train_config(tmp_path):
    import yaml

    from openmindspore import train
    from openmindspore.automl.report import _write_train_config

    spec = [{"type": "conv", "channels": 16, "kernel": 3, "stride": 1}, {"type": "relu"}]
    summary = {
        "config": {"space": "cnn", "dataset": "mnist5k", "space_options": {"steps": 150}},
        "best": {"spec": spec},
    }
    cfg = yaml.safe_load(_write_train_config(summary, tmp_path / "best.yaml").read_text())
    tc = train.config_from_dict(cfg)
    assert tc.model == {"name": "cnn", "layers": spec} and tc.steps == 150 and tc.dataset == "mnist5k"
