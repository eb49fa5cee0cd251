"""Warm start (``--prior``): the prior table from earlier logs, stored in search.json, exact resume,
a misleading prior loses its weight, and the causal replay stays valid on warm-started logs."""

import json

import numpy as np
import pytest

from openmindspore.automl import MarkovChain, make_space, run_search
from openmindspore.automl.chain import ChainConfig
from openmindspore.automl.prior import build_prior, prior_summary
from openmindspore.automl.search import load_trials
from openmindspore.causal.searchlog import log_units
from openmindspore.causal.treatments import get_treatment
from openmindspore.cli.main import main
from openmindspore.errors import ConfigError


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "c100"
    run_search(make_space("nb201", "cifar100"), "markov", 40, out_dir=out, seed=100)
    return out


def _strip(t) -> dict:
    return {k: v for k, v in t.to_json().items() if k != "duration_s"}


def test_prior_table_from_the_sources_elite(source):
    nb = make_space("nb201")
    table = build_prior([source], nb.grammar)
    assert set(table["probs"]) == set(nb.grammar.states) and table["sources"][0]["dataset"] == "cifar100"
    for row in table["probs"].values():
        assert sum(row.values()) == pytest.approx(1.0) and min(row.values()) > 0
    # the elite of a NAS-Bench-201 search avoids 'none' (a broken edge) on the first edge
    assert table["probs"]["edge0"]["none"] < 0.2 < max(table["probs"]["edge0"].values())
    with pytest.raises(ConfigError, match="a search directory"):
        build_prior([source.parent / "missing"], nb.grammar)


def test_several_sources_pool_each_ones_elite(source, tmp_path):
    """``--prior DIR1 DIR2``: each search adds its own elite (weights summing to its elite's size), so the
    pooled counts are the sum of the single-source counts; and the order of the directories does not matter."""
    nb = make_space("nb201")
    other = tmp_path / "c100b"
    run_search(make_space("nb201", "cifar100"), "markov", 40, out_dir=other, seed=101)
    one, two = build_prior([source], nb.grammar), build_prior([other], nb.grammar)
    both, swapped = build_prior([source, other], nb.grammar), build_prior([other, source], nb.grammar)
    assert len(both["sources"]) == 2
    for state, row in both["probs"].items():
        assert row == pytest.approx(swapped["probs"][state])
    for state, row in both["counts"].items():
        for cid, c in row.items():
            assert c == pytest.approx(one["counts"][state][cid] + two["counts"][state][cid])
    assert any(row != pytest.approx(one["probs"][state]) for state, row in both["probs"].items())


def test_warm_search_stores_prior_resumes_exactly_and_replays(source, tmp_path):
    nb = make_space("nb201")
    full = run_search(nb, "markov", 30, out_dir=tmp_path / "full", seed=3, prior=[source])
    cfg = json.loads((tmp_path / "full" / "search.json").read_text())
    warm = cfg["strategy_options"]["warm"]
    assert warm["probs"] == build_prior([source], nb.grammar)["probs"] and warm["counts"]
    # the first trial is drawn from the prior (not the uniform chain)
    assert full.trials[0].steps[0].probs != pytest.approx({k: 0.2 for k in full.trials[0].steps[0].probs})
    run_search(nb, "markov", 12, out_dir=tmp_path / "part", seed=3, prior=[source])
    resumed = run_search(nb, "markov", 30, out_dir=tmp_path / "part", seed=3)  # no --prior: the stored one
    assert [_strip(t) for t in resumed.trials] == [_strip(t) for t in full.trials]
    # the causal replay rebuilds every trial's chain from search.json and checks its logged propensities
    config, trials = load_trials(tmp_path / "full")
    pred = get_treatment("skip")
    mc = log_units(config, trials, nb.grammar, pred, "test.accuracy", mc_samples=100, method="montecarlo")
    ex = log_units(config, trials, nb.grammar, pred, "test.accuracy")
    assert ex.exact and not mc.exact and np.abs(mc.e - ex.e).max() < 0.2


def test_misleading_prior_loses_weight_and_good_prior_keeps_it():
    nb = make_space("nb201")
    g = nb.grammar
    weight = {}
    rng = np.random.default_rng(0)
    paths = [[(f"edge{e}", int(rng.integers(5))) for e in range(6)] for _ in range(40)]
    scores = [nb.true_score(nb.spec(p)) for p in paths]
    good = {
        f"edge{e}": {"none": 0.02, "skip_connect": 0.08, "nor_conv_1x1": 0.3, "nor_conv_3x3": 0.5, "avg_pool_3x3": 0.1}
        for e in range(6)
    }
    bad = {
        s: {"none": 0.5, "skip_connect": 0.1, "nor_conv_1x1": 0.08, "nor_conv_3x3": 0.02, "avg_pool_3x3": 0.3}
        for s in good
    }
    for name, probs in (("good", good), ("bad", bad)):
        chain = MarkovChain(g, ChainConfig(warm={"probs": probs}))
        assert chain.warm_weight == 1.0
        chain.fit(zip(paths, scores))
        weight[name] = chain.warm_weight
    assert weight["good"] > 0.9 and weight["bad"] == 0.0


def test_the_prior_weight_is_reported_and_falls_for_a_misleading_prior(source, tmp_path, capsys):
    """``oms search`` and ``--report`` tell whether the prior is still trusted: its weight after the search, as
    the chain computes it (1 trusted, 0 when the task's results disagree with it)."""
    nb = make_space("nb201")
    probs = {"none": 0.5, "skip_connect": 0.1, "nor_conv_1x1": 0.08, "nor_conv_3x3": 0.02, "avg_pool_3x3": 0.3}
    bad = run_search(
        nb, "markov", 25, seed=4, strategy_options={"warm": {"probs": {f"edge{e}": probs for e in range(6)}}}
    )
    s = prior_summary(bad.config, bad.trials, nb.grammar)
    assert s is not None and s["weight"] == 0.0 and "disagree" in s["text"] and s["searches"] == 0
    assert prior_summary(run_search(nb, "markov", 5, seed=4).config, [], nb.grammar) is None  # no prior, no line
    out = tmp_path / "warm"
    argv = ["search", "--space", "nb201", "--budget", "25", "--prior", str(source), "--out", str(out), "--json"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)["prior"]
    config, trials = load_trials(out)
    chain = MarkovChain(nb.grammar, ChainConfig(warm=config["strategy_options"]["warm"]))
    chain.fit((t.path, t.score if t.ok else None) for t in trials)
    assert got["searches"] == 1 and got["weight"] == pytest.approx(chain.warm_weight) and got["weight"] > 0.5
    assert main(["search", "--report", str(out)]) == 0
    assert "prior: 1 earlier search, weight now" in capsys.readouterr().out


def test_prior_needs_markov_and_cli_stores_it(source, tmp_path, capsys):
    with pytest.raises(ConfigError, match="--strategy markov"):
        run_search(make_space("nb201"), "random", 5, prior=[source])
    out = tmp_path / "warm"
    argv = ["search", "--space", "nb201", "--budget", "8", "--prior", str(source), "--out", str(out), "--json"]
    assert main(argv) == 0
    assert json.loads((out / "search.json").read_text())["strategy_options"]["warm"]["sources"][0]["dir"] == str(source)
    capsys.readouterr()
    assert (
        main(
            [
                "search",
                "--space",
                "nb201",
                "--budget",
                "5",
                "--prior",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--prior" in err
