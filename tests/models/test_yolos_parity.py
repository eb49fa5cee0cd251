"""YOLOS equals Hugging Face ``YolosForObjectDetection``: mid-position embeddings on/off, several sizes."""

from __future__ import annotations

import numpy as np
import pytest

from oms_testing import from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.models import create_model, list_models
from openmindspore.models.hf_convert import load_hf_state_dict
from vision_testing import TOL, max_abs, randomize, state_dict_numpy

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def cfg(mid: bool) -> dict:
    return dict(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[64, 48],
        patch_size=16,
        num_detection_tokens=6,
        num_labels=4,
        use_mid_position_embeddings=mid,
    )


@pytest.fixture(scope="module", params=[False, True], ids=["no-mid-pos", "mid-pos"])
def pair(request):
    c = cfg(request.param)
    ref = transformers.YolosForObjectDetection(transformers.YolosConfig(**c, attn_implementation="eager")).eval()
    randomize(ref, seed=3 + int(request.param))
    ours = create_model("yolos", **c)
    load_hf_state_dict(ours, state_dict_numpy(ref))
    return ref, ours


# (64, 48) is the trained size (interpolation is then the identity); the others are non-default,
# non-square, larger/smaller, and one is not a multiple of the patch size (the conv drops the remainder).
@pytest.mark.parity
@pytest.mark.parametrize("hw", [(64, 48), (80, 96), (48, 112), (50, 70)])
def test_yolos_matches_reference(pair, hw):
    ref, ours = pair
    x = np.random.default_rng(sum(hw)).standard_normal((2, 3) + hw).astype(np.float32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x), output_hidden_states=True)
    o = ours.predict(x)
    assert o.logits.shape == (2, 6, 5) and o.pred_boxes.shape == (2, 6, 4)
    assert max_abs(o.logits, r.logits.numpy()) < TOL
    assert max_abs(o.pred_boxes, r.pred_boxes.numpy()) < TOL
    assert max_abs(o.last_hidden_state, r.last_hidden_state.numpy()) < TOL
    assert len(o.hidden_states) == len(r.hidden_states) == 4
    for a, b in zip(o.hidden_states, r.hidden_states):
        assert max_abs(a, b.numpy()) < TOL
    # outputs are far from trivial, so the comparison has power
    assert np.abs(r.logits.numpy()).max() > 0.1 and r.pred_boxes.numpy().std() > 0.01


@pytest.mark.parity
def test_mid_position_embeddings_matter(pair):
    """Zeroing the mid-position embeddings must change the output when they are used (guards the test)."""
    ref, ours = pair
    names = {q.name for q in ours.get_parameters()}
    if not ours.config.use_mid_position_embeddings:
        assert ours.vit.encoder.interpolation is None and not any("mid_position" in n for n in names)
        return
    assert "vit.encoder.interpolation.mid_position_embeddings" in names
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 48)).astype(np.float32)
    before = ours.predict(x).logits
    p = ours.vit.encoder.interpolation.mid_position_embeddings
    saved = p.asnumpy().copy()
    import mindspore as ms

    p.set_data(ms.Tensor(np.zeros_like(saved)))
    try:
        assert max_abs(ours.predict(x).logits, before) > 1e-3
    finally:
        p.set_data(ms.Tensor(saved))


def test_yolos_presets_registered_with_reference_values():
    from openmindspore.models.yolos import YOLOS_PRESETS, YolosConfig

    assert {"yolos", "yolos-tiny", "yolos-small", "yolos-base"} <= set(list_models())
    tiny = YolosConfig.from_dict(YOLOS_PRESETS["yolos-tiny"])
    assert (tiny.hidden_size, tiny.num_attention_heads, tiny.image_size, tiny.use_mid_position_embeddings) == (
        192,
        3,
        (800, 1333),
        False,
    )
    assert YolosConfig.from_dict(YOLOS_PRESETS["yolos-base"]).image_size == (800, 1344)
    assert tiny.num_labels == 91 and tiny.num_detection_tokens == 100 and tiny.layer_norm_eps == 1e-12


@pytest.mark.parity
def test_yolos_tiny_preset_parameter_shapes_match_reference():
    """Our yolos-tiny preset has exactly the reference architecture's parameters (names and shapes)."""
    from openmindspore.models.yolos import YOLOS_PRESETS

    p = dict(YOLOS_PRESETS["yolos-tiny"])
    ref_cfg = transformers.YolosConfig(**{**p, "image_size": list(p["image_size"])}, num_labels=91)
    with torch.device("meta"):
        ref = transformers.YolosForObjectDetection(ref_cfg)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = create_model("yolos-tiny")
    assert {q.name: tuple(q.shape) for q in ours.get_parameters()} == ref_shapes


def test_yolos_bad_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="use_mid_position_embeddings"):
        create_model("yolos", num_hidden_layers=1, use_mid_position_embeddings=True)
    ours = create_model("yolos", **cfg(False))
    with pytest.raises(ConfigError, match="channels"):
        ours.predict(np.zeros((1, 1, 64, 48), np.float32))
    with pytest.raises(ConfigError, match="patch"):
        ours.predict(np.zeros((1, 3, 8, 48), np.float32))


@pytest.mark.parity
def test_yolos_parameter_gradients_match_reference():
    """Backward equals the reference too (training correctness), mid-position embeddings on."""
    import mindspore as ms

    c = dict(cfg(True), image_size=[32, 48], patch_size=8, num_hidden_layers=2)
    ref = transformers.YolosForObjectDetection(transformers.YolosConfig(**c, attn_implementation="eager")).eval()
    randomize(ref, seed=11)
    ours = create_model("yolos", **c)
    load_hf_state_dict(ours, state_dict_numpy(ref))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 40, 56)).astype(np.float32)  # non-default size: interpolation in the graph
    r1 = rng.standard_normal((2, 6, 5)).astype(np.float32)
    r2 = rng.standard_normal((2, 6, 4)).astype(np.float32)
    out = ref(torch.from_numpy(x))
    ((out.logits * torch.from_numpy(r1)).sum() + (out.pred_boxes * torch.from_numpy(r2)).sum()).backward()
    params = ours.trainable_params()

    def f(xx):
        lg, bx = ours(xx)[:2]
        return (lg * ms.Tensor(r1)).sum() + (bx * ms.Tensor(r2)).sum()

    _, grads = ms.value_and_grad(f, None, params)(ms.Tensor(x))
    ref_grads = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    assert len(params) == len(ref_grads)
    for p, g in zip(params, grads):
        rg = ref_grads[p.name]
        assert max_abs(g.asnumpy(), rg) < TOL * max(1.0, float(np.abs(rg).max())), p.name
