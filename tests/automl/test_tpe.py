"""``--strategy tpe`` (Optuna's TPE): reproducible, resumable, learns, counters respected, and its logs
(``p: null``) are refused by ``oms effects`` with one line."""

import json

import numpy as np
import pytest

pytest.importorskip("optuna")

from openmindspore.automl import Grammar, Trial, build_spec, make_space, run_search  # noqa: E402
from openmindspore.automl.tpe import TPESearch  # noqa: E402
from openmindspore.cli.main import main  # noqa: E402
from openmindspore.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def _strip(t: Trial) -> dict:
    return {k: v for k, v in t.to_json().items() if k != "duration_s"}


def test_tpe_resumes_exactly_and_logs_null_propensities(nb201, tmp_path):
    full = run_search(nb201, "tpe", 24, out_dir=tmp_path / "full", seed=7)
    run_search(nb201, "tpe", 13, out_dir=tmp_path / "part", seed=7)
    resumed = run_search(nb201, "tpe", 24, out_dir=tmp_path / "part", seed=7)
    assert [_strip(t) for t in resumed.trials] == [_strip(t) for t in full.trials]
    other = run_search(nb201, "tpe", 24, seed=8)
    assert [t.spec for t in other.trials] != [t.spec for t in full.trials]
    line = json.loads((tmp_path / "full" / "trials.jsonl").read_text().splitlines()[-1])
    assert line["strategy"] == "tpe" and line["log_propensity"] is None
    assert all(s["p"] is None and s["probs"] == {} for s in line["steps"])


def test_tpe_learns_beyond_random(nb201):
    # after TPE's 10 random startup trials its proposals are better cells than uniform random walks'
    trials = {
        s: [[nb201.true_score(t.spec) for t in run_search(nb201, s, 40, seed=r).trials] for r in range(3)]
        for s in ("tpe", "random")
    }
    tpe, rnd = np.array(trials["tpe"]), np.array(trials["random"])
    assert tpe[:, 20:].mean() > rnd[:, 20:].mean() + 2.0  # accuracy points (measured: 88.8 vs 85.0)


def test_tpe_respects_grammar_counters():
    g = Grammar.from_dict(
        {
            "name": "stack",
            "start": "s",
            "counters": {"layers": 3},
            "states": {
                "s": [
                    {"id": "conv", "next": "s", "emit": {"type": "conv"}, "count": ["layers"]},
                    {"id": "pool", "next": "s", "emit": {"type": "pool"}, "count": ["layers"]},
                    {"id": "end", "next": None},
                ]
            },
        }
    )
    strat = TPESearch(g)
    history: list[Trial] = []
    for t in range(25):
        steps, path, _ = strat.propose(history, np.random.default_rng([0, t, 0]))
        spec = build_spec(g, path)
        assert len(spec) <= 3 and g.walk([s.choice for s in steps]) == path
        score = float(sum(e["type"] == "conv" for e in spec))  # more convs is better
        history.append(Trial(t, "tpe", spec, steps, path, seed=t, score=score, status="ok"))
    assert max(t.score for t in history) == 3.0


def test_tpe_rejects_bad_options(nb201):
    with pytest.raises(ConfigError, match="TPESampler options"):
        run_search(nb201, "tpe", 2, strategy_options={"n_startup": 3})
    with pytest.raises(ConfigError, match="no 'seed'"):
        run_search(nb201, "tpe", 2, strategy_options={"seed": 3})


def test_effects_refuses_a_tpe_log_in_one_line(tmp_path, capsys):
    out = tmp_path / "tpe"
    assert (
        main(["search", "--space", "nb201", "--strategy", "tpe", "--budget", "12", "--out", str(out), "--quiet"]) == 0
    )
    capsys.readouterr()
    assert main(["effects", str(out), "--treatment", "skip"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("oms effects: error:")
    assert "12 trials without propensities" in err and "--strategy markov" in err


def test_tpe_sampler_options_on_the_cli(tmp_path, capsys):
    base = ["search", "--space", "nb201", "--strategy", "tpe", "--budget", "12", "--quiet"]
    assert main([*base, "--strategy-option", "n_startup_trials=4", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b")]) == 0  # Optuna's default: 10 random startup trials
    logs = [[json.loads(t)["spec"] for t in (tmp_path / d / "trials.jsonl").read_text().splitlines()] for d in "ab"]
    assert logs[0][:4] == logs[1][:4] and logs[0][4:] != logs[1][4:]  # TPE proper from trial 4 on
    stored = json.loads((tmp_path / "a" / "search.json").read_text())["strategy_options"]
    assert stored == {"n_startup_trials": 4}
    capsys.readouterr()
    assert main([*base, "--strategy-option", "seed=1", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "'seed=1'" in err and "tpe options: " in err and "n_startup_trials" in err and "seed," not in err
