"""Spec-driven CNN: every layer type builds, shapes are checked, errors name the layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.models import DEFAULT_CNN, SpecError, create_model, list_models, validate_spec

ALL_LAYERS = [
    {"type": "conv", "channels": 8, "kernel": 3},
    {"type": "batchnorm"},
    {"type": "activation", "fn": "gelu"},
    {"type": "maxpool", "kernel": 2},
    {"type": "conv", "channels": 8, "kernel": 5, "stride": 2, "padding": 2},
    {"type": "elu"},
    {"type": "avgpool", "kernel": 2, "stride": 1},
    {"type": "dropout", "rate": 0.3},
    {"type": "globalpool", "mode": "max"},
    {"type": "dense", "units": 16},
    {"type": "tanh"},
]


def test_spec_is_plain_json_and_every_layer_type_builds(ms_cpu):
    from mindspore import Tensor

    assert json.loads(json.dumps(ALL_LAYERS)) == ALL_LAYERS
    net = create_model("cnn", input_shape=(1, 16, 16), num_classes=5, layers=ALL_LAYERS, seed=3)
    net.set_train(False)
    out = net(Tensor(np.zeros((2, 1, 16, 16), np.float32)))
    assert out.shape == (2, 5)
    assert validate_spec(ALL_LAYERS, (1, 16, 16), 5) == (5,)


def test_default_cnn_and_mlp_shapes(ms_cpu):
    from mindspore import Tensor

    assert validate_spec(DEFAULT_CNN, (1, 28, 28), 10) == (10,)
    mlp = create_model("mlp", input_shape=(30,), num_classes=2, hidden=[8, 4])
    assert mlp(Tensor(np.zeros((3, 30), np.float32))).shape == (3, 2)
    assert {"cnn", "mlp"} <= set(list_models())


def test_same_seed_same_init_different_seed_different_init(ms_cpu):
    def weights(seed):
        net = create_model(
            "cnn",
            input_shape=(1, 8, 8),
            num_classes=3,
            seed=seed,
            layers=[{"type": "conv", "channels": 4}, {"type": "dense", "units": 5}],
        )
        return np.concatenate([p.asnumpy().ravel() for p in net.get_parameters()])

    assert np.array_equal(weights(1), weights(1))
    assert not np.array_equal(weights(1), weights(2))


@pytest.mark.parametrize(
    "layers,fragment",
    [
        (
            [
                {"type": "conv", "channels": 4},
                {"type": "maxpool", "kernel": 2},
                {"type": "maxpool", "kernel": 2},
                {"type": "maxpool", "kernel": 2},
                {"type": "maxpool", "kernel": 2},
            ],
            r"layers\[4\].*at least 2x2, got 1x1",
        ),
        ([{"type": "wavelet"}], r"layers\[0\].*type in"),
        ([{"type": "conv", "channels": 0}], r"layers\[0\].*'channels' to be an integer >= 1"),
        ([{"type": "dense", "units": 8}, {"type": "conv", "channels": 4}], r"layers\[1\].*CHW input"),
        ([{"type": "dropout", "rate": 1.5}], r"layers\[0\].*rate"),
        ([{"type": "conv", "channels": 4, "kernel": 11, "padding": 0}], r"layers\[0\].*at least 11x11"),
        (["conv"], r"layers\[0\].*mapping"),
    ],
)
def test_invalid_specs_name_the_layer_and_shape(layers, fragment):
    with pytest.raises(SpecError, match=fragment):
        validate_spec(layers, (1, 8, 8), 10)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"model.name='resnet9000'.*cnn"):
        create_model("resnet9000", input_shape=(1, 8, 8), num_classes=2)
