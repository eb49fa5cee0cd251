"""ViT equals Hugging Face ``ViTForImageClassification`` (random weights, several image sizes)."""

from __future__ import annotations

import numpy as np
import pytest

from oms_testing import from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.models import create_model
from openmindspore.models.hf_convert import load_hf_state_dict
from openmindspore.models.vit.interpolate import bicubic_matrix, resize_grid_numpy
from vision_testing import TOL, max_abs, randomize, state_dict_numpy

pytestmark = pytest.mark.usefixtures("_ms")

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")


@pytest.fixture(scope="module")
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


CFG = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=96,
    image_size=32,
    patch_size=8,
    num_labels=5,
    layer_norm_eps=1e-6,
)


@pytest.mark.parity
@pytest.mark.parametrize(
    "in_hw,out_hw",
    [((50, 83), (32, 42)), ((4, 3), (7, 5)), ((14, 14), (20, 9)), ((3, 5), (1, 2)), ((6, 6), (6, 6)), ((1, 1), (3, 2))],
)
def test_bicubic_equals_torch_interpolate(in_hw, out_hw):
    x = np.random.default_rng(0).standard_normal((2, 4) + in_hw).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=out_hw, mode="bicubic", align_corners=False).numpy()
    assert max_abs(resize_grid_numpy(x, out_hw), ref) < 1e-5


def test_bicubic_matrix_rows_sum_to_one_and_identity():
    for i, o in [(5, 9), (9, 5), (7, 7), (1, 4)]:
        w = bicubic_matrix(i, o)
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(bicubic_matrix(7, 7), np.eye(7, dtype=np.float32))


@pytest.fixture(scope="module")
def pair():
    ref = transformers.ViTForImageClassification(transformers.ViTConfig(**CFG, attn_implementation="eager")).eval()
    randomize(ref, seed=1)
    ours = create_model("vit", **CFG)
    load_hf_state_dict(ours, state_dict_numpy(ref))
    return ref, ours


@pytest.mark.parity
@pytest.mark.parametrize("hw,interp", [((32, 32), False), ((48, 64), True), ((40, 24), True), ((56, 56), True)])
def test_vit_matches_reference(pair, hw, interp):
    ref, ours = pair
    x = np.random.default_rng(hw[0] * 7 + hw[1]).standard_normal((2, 3) + hw).astype(np.float32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x), output_hidden_states=True, interpolate_pos_encoding=interp)
    o = ours.predict(x, interpolate_pos_encoding=interp)
    assert o.logits.shape == (2, CFG["num_labels"])
    assert max_abs(o.logits, r.logits.numpy()) < TOL
    assert len(o.hidden_states) == len(r.hidden_states) == CFG["num_hidden_layers"] + 1
    for a, b in zip(o.hidden_states, r.hidden_states):
        assert max_abs(a, b.numpy()) < TOL
    assert np.abs(r.logits.numpy()).max() > 0.1  # the comparison is not between near-zero outputs


def test_vit_wrong_size_without_interpolation_is_a_clear_error(pair):
    _, ours = pair
    with pytest.raises(ConfigError, match="interpolate_pos_encoding"):
        ours.predict(np.zeros((1, 3, 48, 32), np.float32))


def test_vit_presets_registered():
    from openmindspore.models import list_models
    from openmindspore.models.vit import VIT_PRESETS

    assert {"vit", "vit-tiny-patch16-224", "vit-small-patch16-224", "vit-base-patch16-224"} <= set(list_models())
    assert VIT_PRESETS["vit-base-patch16-224"]["hidden_size"] == 768


def test_vit_bad_config_errors():
    with pytest.raises(ConfigError, match="num_attention_heads"):
        create_model("vit", hidden_size=50, num_attention_heads=3)
    with pytest.raises(ConfigError, match="hidden_act"):
        create_model("vit", hidden_act="gelu_new")
    with pytest.raises(ConfigError, match="hiden_size.*did you mean hidden_size"):
        create_model("vit", hiden_size=32)
