"""ViT / YOLOS configs: pydantic models with every problem reported at once, did-you-mean, HF config.json keys."""

from __future__ import annotations

import json

import pytest

from openmindspore.errors import ConfigError
from openmindspore.models.vit.config import ViTConfig
from openmindspore.models.yolos.config import YOLOS_PRESETS, YolosConfig
from openmindspore.validation import ConfigErrors

# the shape of a Hugging Face ViT config.json: bookkeeping keys beside the architecture
HF_VIT = {
    "architectures": ["ViTForImageClassification"],
    "model_type": "vit",
    "transformers_version": "4.46.0",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "image_size": 32,
    "patch_size": 8,
    "id2label": {"0": "cat", "1": "dog", "2": "bird"},
    "label2id": {"cat": 0, "dog": 1, "bird": 2},
    "encoder_stride": 8,
}


def test_hf_config_json_keys_and_conversions():
    cfg = ViTConfig.from_dict(HF_VIT)
    assert cfg.image_size == (32, 32) and cfg.grid == (4, 4)
    assert cfg.id2label == {0: "cat", 1: "dog", 2: "bird"} and cfg.num_labels == 3  # counted from id2label
    assert ViTConfig.from_dict({**HF_VIT, "num_labels": 5}).num_labels == 5  # an explicit count wins
    assert ViTConfig.from_dict({"patch_size": [16, 16]}).patch_size == 16
    # to_dict -> JSON -> from_dict is the identity (model.json sidecars are written this way)
    assert ViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="frozen"):
        cfg.hidden_size = 32  # type: ignore[misc]


def test_misspelled_key_gets_did_you_mean_and_every_problem_is_reported():
    with pytest.raises(ConfigError, match=r"ViTConfig\.hiden_size=32 .*did you mean hidden_size\?"):
        ViTConfig.from_dict({"hiden_size": 32})
    with pytest.raises(ConfigErrors) as e:
        ViTConfig.from_dict({"num_hidden_layers": 0, "hidden_dropout_prob": 1.5, "hidden_act": "gelu_new"})
    fields = [p.field for p in e.value.problems]
    assert fields == ["ViTConfig.num_hidden_layers", "ViTConfig.hidden_act", "ViTConfig.hidden_dropout_prob"]
    msg = str(e.value)
    assert msg.startswith("ViTConfig has 3 problems:") and "greater than 0" in msg and "'gelu'" in msg


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"hidden_size": 50, "num_attention_heads": 3}, "does not divide hidden_size=50"),
        ({"image_size": 8}, "smaller than patch_size=16"),
        ({"patch_size": [16, 8]}, "square patch"),
        ({"num_hidden_layers": True}, "not True"),
        ({"layer_norm_eps": 0.5}, "less than 0.01"),
        ({"image_size": [224, 224, 3]}, "image_size"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(bad, words):
    with pytest.raises(ConfigError, match=words):
        ViTConfig.from_dict(bad)


def test_yolos_config_defaults_and_checks():
    tiny = YolosConfig.from_dict(YOLOS_PRESETS["yolos-tiny"])
    assert (tiny.image_size, tiny.num_labels, tiny.num_detection_tokens, tiny.eos_coefficient) == (
        (800, 1333),
        91,
        100,
        0.1,
    )
    with pytest.raises(ConfigError, match="use_mid_position_embeddings"):
        YolosConfig.from_dict({"num_hidden_layers": 1})
    with pytest.raises(ConfigError, match=r"YolosConfig\.eos_coefficient=-1"):
        YolosConfig.from_dict({"eos_coefficient": -1})
    with pytest.raises(ConfigError, match="did you mean num_detection_tokens"):
        YolosConfig.from_dict({"num_detection_token": 10})
    # a YOLOS-only key is not a ViT key
    with pytest.raises(ConfigError, match="num_detection_tokens"):
        ViTConfig.from_dict({"num_detection_tokens": 10})
