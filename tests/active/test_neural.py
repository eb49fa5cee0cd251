"""MindSpore learners: model resolution (cnn, mlp, a spec file, a search directory's best spec), their
options and bad input, fits in fresh processes (MC dropout, K-seed ensembles, exact re-fits), and a whole
run whose model `oms serve` serves with calibrated probabilities and abstention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openmindspore.active import active_config
from openmindspore.active.calibration import temper
from openmindspore.active.neural import NeuralLearner, has_dropout, resolve_model, schedule, train_seed
from openmindspore.cli.main import main
from openmindspore.data import load_dataset
from openmindspore.errors import ConfigError

SPEC = [{"type": "conv", "channels": 4, "kernel": 3}, {"type": "relu"}, {"type": "maxpool", "kernel": 2}]
FAST = {"epochs": 1, "min_steps": 8, "train_batch": 16}


def test_cnn_and_mlp_get_dropout_before_the_head_unless_it_is_zero():
    cnn = resolve_model(active_config({"model": "cnn", "dropout": 0.3}))
    assert cnn["name"] == "cnn" and cnn["layers"][-1] == {"type": "dropout", "rate": 0.3} and has_dropout(cnn)
    plain = resolve_model(active_config({"model": "cnn", "dropout": 0}))
    assert plain["layers"][-1] == {"type": "relu"} and not has_dropout(plain)
    mlp = resolve_model(active_config({"model": "mlp"}))
    assert mlp == {"name": "mlp", "hidden": [128], "dropout": 0.5} and has_dropout(mlp)


def test_a_spec_file_and_a_search_directory_give_their_layers(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(SPEC))
    assert resolve_model(active_config({"model": str(spec)})) == {"name": "cnn", "layers": SPEC}
    search = tmp_path / "search"
    search.mkdir()
    (search / "search.json").write_text(json.dumps({"space": "cnn", "dataset": "digits"}))
    trials = [
        {"trial": 0, "status": "ok", "score": 0.8, "spec": SPEC[:1]},
        {"trial": 1, "status": "failed", "score": None, "spec": [{"type": "dense", "units": 1}]},
        {"trial": 2, "status": "ok", "score": 0.9, "spec": SPEC},
        {"trial": 3, "status": "ok", "score": 0.9, "spec": SPEC[:2]},  # a tie: the earlier trial wins
    ]
    (search / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    cfg = active_config({"model": str(search)})
    assert cfg.model == str(search.resolve()) and resolve_model(cfg)["layers"] == SPEC
    (search / "search.json").write_text(json.dumps({"space": "sklearn"}))
    with pytest.raises(ConfigError, match="a search over the cnn space"):
        resolve_model(cfg)


def test_schedule_and_seeds():
    cfg = active_config({"model": "cnn", "epochs": 10, "min_steps": 50, "train_batch": 32})
    assert schedule(cfg, 20) == (50, 20)  # few labels: min_steps, batch = all of them
    assert schedule(cfg, 320) == (100, 32)  # 10 epochs of 10 batches
    default = active_config({"model": "cnn"})  # 30 epochs, at least 300 steps: small sets are not undertrained
    assert schedule(default, 160) == (300, 32) and schedule(default, 640) == (600, 32)
    assert train_seed(3, 0) == train_seed(3, 0) != train_seed(3, 1) != train_seed(4, 0)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "cnm"], "did you mean cnn?"),
        (["--model", "cnn", "--dropout", "0", "--strategy", "bald"], "--dropout 0.5 for cnn/mlp"),
        (["--model", "cnn", "--semi-supervised"], "a scikit-learn learner"),
        (["--model", "cnn", "--dataset", "iris"], "an image dataset for a CNN"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    assert main(["active", *argv, "--budget", "30", "--out", str(out)]) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_fits_run_in_fresh_processes_exactly_and_ensembles_are_posterior_samples():
    ds = load_dataset("synthetic")
    cfg = active_config({"dataset": "synthetic", "model": "cnn", "dropout": 0, "ensemble": 2, **FAST})
    learner = NeuralLearner(cfg, resolve_model(cfg), ds.x_train, ds.x_test, ds.num_classes, seed=5)
    assert learner.has_samples and learner.mc_passes == 0
    idx = np.arange(0, 300, 5)
    learner.fit(idx, ds.y_train[idx])
    s = learner.proba_samples(ds.x_train[:50], 20)
    assert s.shape == (2, 50, ds.num_classes) and not np.allclose(s[0], s[1])  # two seeds, two networks
    np.testing.assert_allclose(learner.proba(ds.x_train[:50]), s.mean(axis=0))
    assert learner.embed(ds.x_test[:3]).shape == (3, 128)  # the default CNN's last hidden layer
    again = learner.fresh()
    again.fit(idx[::-1], ds.y_train[idx[::-1]])  # same labelled set in another order: the same fit
    np.testing.assert_array_equal(again.proba(ds.x_test), learner.proba(ds.x_test))
    with pytest.raises(ValueError, match="pool and test split only"):
        learner.proba(ds.x_val[:2] + 100.0)
    learner.close()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_served_calibration_is_the_loops_temperature_and_threshold():
    from openmindspore.serve.predictor import calibrated

    z = np.random.default_rng(0).normal(size=(50, 4)) * 4
    cal = {"temperature": 1.7, "log_floor": float(np.log(1e-6)), "threshold": 0.8}
    p, abstain = calibrated(z, cal)
    want = temper(_softmax(z), 1.7)
    np.testing.assert_allclose(p, want, atol=1e-6)
    np.testing.assert_array_equal(abstain, want.max(axis=1) < 0.8)
    assert 0 < abstain.sum() < 50
    assert calibrated(z, {**cal, "threshold": None})[1].all()  # nothing certified: always abstain


def _served(model_dir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from openmindspore.serve.registry import load_predictor, resolve_source

    return load_predictor(resolve_source(str(model_dir))).predict({"x": x})


@pytest.mark.slow
def test_a_round_with_mc_dropout_writes_a_served_calibrated_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--dataset", "synthetic", "--model", "cnn", "--strategy", "bald", "--mc-samples", "3", "--folds", "2",
            "--initial", "20", "--batch", "10", "--budget", "30", "--target-accuracy", "0.6", "--epochs", "1",
            "--min-steps", "8", "--train-batch", "16"]  # fmt: skip
    assert main(["active", *args, "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["status"] == "done" and s["labels_at_stop"] == 30
    st = json.loads((out / "seed_0" / "state.json").read_text())
    assert len(st["labeled"]) == 30 and len(set(st["labeled"])) == 30
    model = out / "seed_0" / "model"
    cal = json.loads((model / "calibration.json").read_text())
    last = st["rows"][-1]
    assert cal["labels"] == 30 and cal["temperature"] == last["temperature"]
    assert cal["certified"] == last["certified"] and cal["target_accuracy"] == 0.6
    assert not list((out / "seed_0").glob(".fits-*"))  # the fits' files are gone
    x = load_dataset("synthetic").x_test
    got = _served(model, x)
    assert set(got) == {"logits", "label", "probabilities", "abstain"}
    conf = got["probabilities"].max(axis=1)
    np.testing.assert_allclose(conf, st["final"]["conf"], atol=2e-5)  # what the loop measured, served
    np.testing.assert_allclose(got["probabilities"], temper(_softmax(got["logits"]), cal["temperature"]), atol=1e-6)
    thr = cal["threshold"]
    np.testing.assert_array_equal(got["abstain"], np.ones(len(x), bool) if thr is None else conf < thr)


def test_importing_active_loads_neither_mindspore_nor_ray():
    import subprocess
    import sys

    mods = (
        "openmindspore.active, openmindspore.active.neural, openmindspore.cli.cmd_active, openmindspore.train.isolated"
    )
    code = f"import sys, {mods}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'mindspore', 'ray'}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import openmindspore.train as train  # its public names still resolve, on first use

    assert train.TrainConfig.__name__ == "TrainConfig" and "Trainer" in train.__all__
