"""Re-evaluation trials (``ChainConfig.intensify``): which model is raced, exact propensities (a replay of a logged
search), resume, the reported best and its repeats, bad values."""

import json

import numpy as np
import pytest
from chain_testing import assert_replay_is_exact, assert_resume_is_exact, assert_samples_keep_floor_and_mask

from openmindspore.automl import make_space, run_search
from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.local import intensify_tables, is_local_trial
from openmindspore.automl.records import repeats, repeats_note
from openmindspore.automl.report import summarize
from openmindspore.automl.spaces.nb201 import nb201_grammar
from openmindspore.errors import ConfigError

INTENSIFY = {"intensify": 0.5, "intensify_after": 20, "local": 0.5, "local_after": 12}


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def _cell(op: int, first: int | None = None) -> list[tuple[str, int]]:
    return [(f"edge{j}", first if (j == 0 and first is not None) else op) for j in range(6)]


def test_the_race_checks_a_lucky_single_score_before_a_repeated_one():
    g = nb201_grammar()
    steady, lucky, third = _cell(3), _cell(3, 0), _cell(2)
    ok = [(steady, 90.0), (steady, 89.0), (lucky, 89.45), (third, 85.0), (_cell(0), 10.0)]
    # lucky (one evaluation, mean 89.45) is below steady's mean 89.5 but its upper bound is higher
    t = intensify_tables(g, ok, top=3, c=0.5)
    assert all(t[s][i] == 1.0 and t[s].sum() == 1.0 for s, i in lucky)
    t = intensify_tables(g, ok, top=3, c=0.0)  # no optimism: the best mean
    assert all(t[s][i] == 1.0 for s, i in steady)
    t = intensify_tables(g, ok, top=1, c=5.0)  # only the best mean is raced
    assert all(t[s][i] == 1.0 for s, i in steady)


def test_a_re_evaluation_trial_keeps_the_floor_and_mask_and_mostly_repeats_the_model():
    g = nb201_grammar()
    ok = [(_cell(3), 90.0), (_cell(2), 80.0), (_cell(1), 70.0)]
    chain = MarkovChain(g, ChainConfig(intensify=1.0, intensify_after=0, warmup=2, epsilon=0.02)).fit(ok)
    assert chain._local
    rng = np.random.default_rng(0)
    assert_samples_keep_floor_and_mask(chain, g, rng, 0.02)
    draws = [tuple(chain.sample(rng)[1]) for _ in range(400)]
    share = np.mean([d == tuple(_cell(3)) for d in draws])
    assert share == pytest.approx(0.92**6, abs=0.06)  # every pinned decision keeps the floor


def test_schedule_counts_the_whole_search_and_comes_first():
    marks = [is_local_trial(n, 80, 0.5) for n in range(100)]
    assert sum(marks) == 10 and not any(marks[:80])


def test_replay_rebuilds_every_re_evaluation_trial(nb201, tmp_path):
    n = assert_replay_is_exact(nb201, tmp_path, INTENSIFY, 40, 4, lambda t, _: is_local_trial(t, 20, 0.5))
    assert n == 10  # trials 21, 23, ..., 39


def test_search_with_re_evaluations_resumes_exactly(nb201, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, INTENSIFY)


def test_a_search_re_evaluates_its_best_and_reports_the_repeats(nb201, tmp_path):
    res = run_search(nb201, "markov", 60, seed=3, out_dir=tmp_path / "s", strategy_options=INTENSIFY)
    specs = [str(t.spec) for t in res.trials if t.ok]
    assert len(specs) - len(set(specs)) >= 18  # the race evaluated models again (10 repeats without it)
    best = res.best
    assert best is not None
    scores = repeats(res.trials, best.spec)
    assert len(scores) >= 3 and best.score == max(scores)  # the reported best was checked (2 evaluations without)
    summary = summarize(tmp_path / "s")["best"]
    assert summary["evaluations"] == len(scores) and summary["mean_score"] == pytest.approx(np.mean(scores))
    note = f" (best of {len(scores)} evaluations, mean {np.mean(scores):.4f})"
    assert repeats_note(len(scores), summary["mean_score"]) == note
    assert repeats_note(1, 90.0) == ""


def test_oms_search_json_and_text_show_the_best_trials_repeats(tmp_path, capsys):
    from openmindspore.cli.main import main

    opts = [x for k, v in INTENSIFY.items() for x in ("--strategy-option", f"{k}={v}")]
    args = ["search", "--space", "nb201", "--budget", "60", "--seed", "3", *opts, "--quiet"]
    assert main([*args, "--out", str(tmp_path / "j"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    scores = repeats(
        run_search(make_space("nb201"), "markov", 60, seed=3, strategy_options=INTENSIFY).trials, out["best"]["spec"]
    )
    assert out["best"]["evaluations"] == len(scores) >= 3 and out["best"]["mean_score"] == pytest.approx(
        np.mean(scores)
    )
    assert main([*args, "--out", str(tmp_path / "t")]) == 0
    assert f"(best of {len(scores)} evaluations, mean " in capsys.readouterr().out


def test_bad_intensify_options_are_config_errors():
    for bad in ({"intensify": 1.5}, {"intensify_after": -1}, {"intensify_top": 0}, {"intensify_c": -1.0}):
        with pytest.raises(ConfigError, match="intensify"):
            MarkovChain(nb201_grammar(), ChainConfig(**bad))
