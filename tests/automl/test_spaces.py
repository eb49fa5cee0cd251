"""Search spaces: every grammar walk gives a valid spec; evaluators report val and test metrics."""

import numpy as np
import pytest

from openmindspore.automl import make_space
from openmindspore.automl.spaces.nb201 import NB201_OPS, arch_string, load_table
from openmindspore.automl.strategies import uniform_walk
from openmindspore.errors import ConfigError


def test_nb201_space_uses_the_offline_table():
    sp = make_space("nb201", "cifar10")
    assert len(load_table("cifar10")) == 5**6
    spec = [
        {"edge": e, "op": op}
        for e, op in enumerate(
            ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
        )
    ]
    runs = load_table("cifar10")["333132"]["val_acc"]
    m = sp.evaluate(spec, seed=0)
    assert m["val"]["accuracy"] in [pytest.approx(v) for v in runs]
    assert m["test"]["accuracy"] == pytest.approx(np.mean(runs))
    vals = {sp.evaluate(spec, seed=s)["val"]["accuracy"] for s in range(30)}
    assert len(vals) == len(runs)  # each trial seed picks one of the training seeds
    assert arch_string(spec).startswith("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|")
    # every walk is one of the 15,625 cells
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = sp.spec(uniform_walk(sp.grammar, rng)[1])
        assert len(spec) == 6 and all(e["op"] in NB201_OPS for e in spec)
    with pytest.raises(ConfigError, match="cifar10"):
        make_space("nb201", "mnist5k")


@pytest.mark.parametrize(
    "space,dataset,metric", [("sklearn-classifier", "iris", "accuracy"), ("sklearn-regressor", "diabetes", "r2")]
)
def test_sklearn_spaces_build_and_score_pipelines(space, dataset, metric):
    sp = make_space(space, dataset)
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(300):
        spec = sp.spec(uniform_walk(sp.grammar, rng)[1])
        assert spec[0]["step"] == "scale" and spec[-1]["step"] == "model"
        kinds.add(spec[-1]["kind"])
    assert len(kinds) == len(sp.grammar.states["model"].choices)
    good = [
        {"step": "scale", "kind": "standard"},
        {
            "step": "model",
            "kind": "svm" if metric == "accuracy" else "svr",
            "kernel": "rbf",
            "C": 10.0,
            "gamma": "scale",
            "epsilon": 0.1,
        },
    ]
    if metric == "accuracy":
        good[1].pop("epsilon")
    m = sp.evaluate(good, seed=0)
    assert set(m) == {"val", "test"} and metric in m["val"]
    assert m["val"][metric] > (0.8 if metric == "accuracy" else 0.2)


def test_sklearn_space_rejects_wrong_task():
    with pytest.raises(ConfigError, match="classification dataset"):
        make_space("sklearn-classifier", "diabetes")


def test_cnn_grammar_walks_are_valid_cnn_specs():
    from openmindspore.automl.grammar import build_spec
    from openmindspore.automl.spaces.cnn import cnn_grammar
    from openmindspore.models.cnn import LAYER_TYPES, validate_spec

    rng = np.random.default_rng(0)
    for shape in [(1, 28, 28), (1, 8, 8)]:
        g = cnn_grammar(shape)
        n_pool = 0
        for _ in range(60):
            spec = build_spec(g, uniform_walk(g, rng)[1])
            assert all(layer["type"] in LAYER_TYPES for layer in spec)
            assert validate_spec(spec, shape, 10) == (10,)
            n_pool += any(layer["type"] in ("maxpool", "avgpool") for layer in spec)
        assert n_pool > 0


def test_cnn_space_rejects_tabular_data():
    with pytest.raises(ConfigError, match="image classification"):
        make_space("cnn", "wine")


@pytest.mark.slow
def test_cnn_space_trains_a_spec_with_mindspore():
    sp = make_space("cnn", "synthetic", steps=30, batch_size=32)
    spec = [
        {"type": "conv", "channels": 8, "kernel": 3, "stride": 1},
        {"type": "relu"},
        {"type": "maxpool", "kernel": 2},
    ]
    m = sp.evaluate(spec, seed=0)
    assert 0.0 <= m["val"]["accuracy"] <= 1.0 and 0.0 <= m["test"]["accuracy"] <= 1.0
    assert m["val"]["accuracy"] > 0.4  # 4 classes: learned something in 30 steps
    bad = [{"type": "maxpool", "kernel": 2}] * 4  # 8x8 -> 0x0
    with pytest.raises(ConfigError, match=r"model.layers\[3\]"):
        sp.evaluate(bad, seed=0)


def _feature_choices(space) -> list[str]:
    return [c.id for c in space.grammar.states["features"].choices]


def test_default_sklearn_grammars_are_unchanged_and_select_is_opt_in():
    assert _feature_choices(make_space("sklearn-classifier", "iris")) == ["none", "pca", "nystroem"]
    assert _feature_choices(make_space("sklearn-regressor", "diabetes")) == ["none", "pca", "poly2"]
    sp = make_space("sklearn-classifier", "wine", select="intervention")
    assert _feature_choices(sp) == ["none", "pca", "nystroem", "intervention"]
    choice = sp.grammar.states["features"].choices[-1]
    assert choice.next == "model" and choice.emit == ({"step": "features", "kind": "intervention"},)
    assert sp.describe()["options"] == {"select": "intervention"}
    rng = np.random.default_rng(0)
    walks = [sp.spec(uniform_walk(sp.grammar, rng)[1]) for _ in range(40)]
    assert any({"step": "features", "kind": "intervention"} in w for w in walks)


def test_select_intervention_spec_evaluates_with_the_pipelines_model():
    sp = make_space("sklearn-classifier", "wine", select="intervention")
    spec = [
        {"step": "scale", "kind": "standard"},
        {"step": "features", "kind": "intervention"},
        {"step": "model", "kind": "logreg", "C": 1.0},
    ]
    m = sp.evaluate(spec, seed=0)
    assert m["val"]["accuracy"] > 0.8 and m["test"]["accuracy"] > 0.8


@pytest.mark.parametrize(
    "options,fragment", [({"select": "yes"}, "select='yes'"), ({"slect": "intervention"}, "did you mean select?")]
)
def test_sklearn_space_options_are_validated(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_space("sklearn-classifier", "iris", **options)


def test_search_cli_passes_select_to_the_space(tmp_path, capsys):
    from openmindspore.cli.main import main

    argv = ["search", "--space", "sklearn-classifier", "--dataset", "wine", "--set", "select=yes"]
    assert main([*argv, "--budget", "1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "select='yes'" in err and "'intervention'" in err
