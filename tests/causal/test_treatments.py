"""Treatment predicates: named ones, the expression language, and its errors (no eval)."""

import pytest

from openmindspore.causal.treatments import NAMED, get_treatment
from openmindspore.errors import ConfigError

CNN = [
    {"type": "conv", "channels": 32, "kernel": 5},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "kernel": 2},
    {"type": "conv", "channels": 64, "stride": 2},
    {"type": "gelu"},
    {"type": "dense", "units": 64},
    {"type": "activation", "fn": "relu"},
    {"type": "dropout", "rate": 0.5},
]
PLAIN = [{"type": "conv", "channels": 16}, {"type": "relu"}, {"type": "globalpool", "mode": "avg"}]
NB = [
    {"edge": i, "op": op}
    for i, op in enumerate(["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1"])
]


@pytest.mark.parametrize(
    "name,cnn,plain",
    [
        ("maxpool", True, False),
        ("batchnorm", True, False),
        ("dropout", True, False),
        ("gelu", True, False),
        ("globalpool", False, True),
        ("dense", True, False),
        ("stride2", True, False),
        ("kernel5_first", True, False),
        ("avgpool", False, False),
        ("depth>=2", True, False),
        ("depth>=1", True, True),
        ("depth >= 3", False, False),
    ],
)
def test_named_on_cnn_specs(name, cnn, plain):
    t = get_treatment(name)
    assert t(CNN) is cnn and t(PLAIN) is plain


@pytest.mark.parametrize(
    "name,want",
    [
        ("conv3x3", True),
        ("conv1x1", True),
        ("skip", True),
        ("no_skip", False),
        ("zero", True),
        ("avgpool", True),
        ("edge0=nor_conv_3x3", True),
        ("edge1=nor_conv_3x3", False),
        ("maxpool", False),
    ],
)
def test_named_on_nb201_specs(name, want):
    assert get_treatment(name)(NB) is want


@pytest.mark.parametrize(
    "expr,cnn,plain",
    [
        ("maxpool and not batchnorm", False, False),
        ("maxpool or globalpool", True, True),
        ("count(conv) == 2", True, False),
        ("count(relu) >= 2", True, False),  # the activation layer with fn=relu counts as relu
        ("first(conv, kernel) == 5", True, False),
        ("first(conv, kernel) == 3", False, True),  # the model's default kernel
        ("last(conv, stride) == 2", True, False),
        ("has(dropout) and (depth >= 2 or layers < 3)", True, False),
        ("pools == 0", False, True),
        ("first(maxpool, kernel) > 1", True, False),  # None (no max-pool) compares false
        ("has('globalpool')", False, True),
    ],
)
def test_expressions(expr, cnn, plain):
    t = get_treatment(expr)
    assert (t(CNN), t(PLAIN)) == (cnn, plain)
    assert t.name == expr


def test_nb201_expressions():
    assert get_treatment("edge(2) == none and count(nor_conv_3x3) == 2")(NB)
    assert not get_treatment("edge(5) != nor_conv_1x1")(NB)


@pytest.mark.parametrize(
    "expr,needle",
    [
        ("maxpol", "a known name (got 'maxpol')"),
        ("__import__('os').system('true')", "comparison or parenthesis at position 16"),
        ("__import__('os')", "a known name (got '__import__')"),
        ("maxpool and", "a value at position 11"),
        ("count(conv", "')' at position 10"),
        ("depth >= 2 2", "the end of the expression at position 11"),
        ("maxpool; rm", "a number, 'string', name, comparison or parenthesis at position 7"),
        ("edge(x) == none", "edge(k) with an integer k"),
        ("edge9=none", "edgeK=OP with K in 0..5"),
        ("", "a treatment name or expression"),
    ],
)
def test_expression_errors_are_config_errors(expr, needle):
    with pytest.raises(ConfigError) as e:
        get_treatment(expr)
    assert needle in str(e.value) and "--treatment" in str(e.value)


def test_every_named_treatment_has_phrases():
    for name, t in NAMED.items():
        assert t.name == name and t.phrase_on and t.phrase_off and t.phrase_on != t.phrase_off
