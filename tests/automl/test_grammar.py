"""Grammar as data: load-time checks name the state; walks and spec building."""

import numpy as np
import pytest

from openmindspore.automl.grammar import Grammar, GrammarError, build_spec
from openmindspore.automl.strategies import uniform_walk
from openmindspore.errors import ConfigError


def _g(states, counters=None, start="a"):
    return Grammar.from_dict({"name": "t", "start": start, "states": states, "counters": counters or {}})


def test_valid_grammar_round_trips_and_builds_spec():
    g = _g(
        {
            "a": [{"id": "x", "next": "b", "emit": {"type": "conv"}}, {"id": "stop", "next": None}],
            "b": [{"id": "8", "next": None, "set": {"channels": 8}}],
        }
    )
    assert Grammar.from_dict(g.to_dict()).to_dict() == g.to_dict()
    path = g.walk(["x", "8"])
    assert path == [("a", 0), ("b", 0)]
    assert build_spec(g, path) == [{"type": "conv", "channels": 8}]
    assert build_spec(g, g.walk(["stop"])) == []


def test_unknown_next_is_named():
    with pytest.raises(GrammarError, match=r"states\['a'\].*'x'.*next='nowhere'"):
        _g({"a": [{"id": "x", "next": "nowhere"}, {"id": "s", "next": None}]})


def test_unreachable_state_is_named():
    with pytest.raises(GrammarError, match=r"states\['orphan'\].*unreachable"):
        _g({"a": [{"id": "s", "next": None}], "orphan": [{"id": "s", "next": None}]})


def test_dead_end_state_is_named():
    # b only loops back to itself (counted), never reaches the end
    with pytest.raises(GrammarError, match=r"states\['b'\].*dead end"):
        _g(
            {
                "a": [{"id": "go", "next": "b"}, {"id": "s", "next": None}],
                "b": [{"id": "again", "next": "b", "count": ["n"]}],
            },
            counters={"n": 3},
        )


def test_uncounted_cycle_is_rejected():
    with pytest.raises(GrammarError, match="uncounted cycle a -> b -> a"):
        _g(
            {
                "a": [{"id": "go", "next": "b"}, {"id": "s", "next": None}],
                "b": [{"id": "back", "next": "a"}, {"id": "s", "next": None}],
            }
        )


def test_empty_state_and_undeclared_counter():
    with pytest.raises(GrammarError, match="at least one choice"):
        _g({"a": [{"id": "s", "next": None}], "b": []})
    with pytest.raises(GrammarError, match="declared counter"):
        _g({"a": [{"id": "s", "next": None, "count": ["zz"]}]})


def test_counters_bound_every_walk():
    g = _g(
        {"a": [{"id": "layer", "next": "a", "emit": {"t": 1}, "count": ["n"]}, {"id": "s", "next": None}]},
        counters={"n": 3},
    )
    rng = np.random.default_rng(0)
    lengths = {len(uniform_walk(g, rng)[1]) for _ in range(300)}
    assert max(lengths) == 4 and min(lengths) == 1  # at most 3 layers + stop
    with pytest.raises(ConfigError, match="exhausted"):
        g.walk(["layer"] * 4 + ["s"])
    with pytest.raises(ConfigError, match="complete walk"):
        g.walk(["layer"])


def test_builtin_grammars_load():
    from openmindspore.automl.spaces.cnn import cnn_grammar
    from openmindspore.automl.spaces.nb201 import nb201_grammar
    from openmindspore.automl.spaces.sklearn import classifier_grammar, regressor_grammar

    for g in (cnn_grammar(), cnn_grammar((1, 8, 8)), nb201_grammar(), classifier_grammar(), regressor_grammar()):
        Grammar.from_dict(g.to_dict())
    assert cnn_grammar((1, 28, 28)).counters["down"] == 3
    assert cnn_grammar((1, 8, 8)).counters["down"] == 2
