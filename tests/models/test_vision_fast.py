"""ViT and YOLOS on the transformer CPU kernels: the same outputs as Hugging Face (1e-4) with and without
the kernels, on odd image sizes; compiled (``ms.jit``) equals op by op; training gradients equal the
MindSpore-only fallback's."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from oms_testing import from_test_extra
from vision_testing import TOL, max_abs, randomize, state_dict_numpy

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")

YOLOS = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=96,
    image_size=[64, 48],
    patch_size=16,
    num_detection_tokens=5,
    num_labels=4,
    use_mid_position_embeddings=True,
)
VIT = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=96,
    image_size=32,
    patch_size=8,
    num_labels=5,
    layer_norm_eps=1e-6,
)


@contextmanager
def _kernels_off():
    """Models built inside use the MindSpore-only layers (the kernel state is restored afterwards)."""
    from openmindspore.models import kernels
    from openmindspore.models.kernels import transformer

    saved = dict(kernels._state), dict(transformer._state)
    kernels._state["lib"] = transformer._state["lib"] = None
    try:
        yield
    finally:
        for st, old in zip((kernels._state, transformer._state), saved):
            st.clear()
            st.update(old)


def _build(name: str, cfg: dict, state: dict):
    from openmindspore.models import create_model
    from openmindspore.models.hf_convert import load_hf_state_dict

    model = create_model(name, **cfg)
    load_hf_state_dict(model, state)
    return model


@pytest.fixture(scope="module")
def models(request):
    """``{"yolos"|"vit": (reference, ours with kernels, ours without)}``."""
    from openmindspore.models.kernels import transformer
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    if not transformer.available():
        pytest.skip("native kernels are off here (no g++ or no oneDNN in MindSpore)")
    out = {}
    for name, cfg, ref_cls, ref_cfg in (
        ("yolos", YOLOS, transformers.YolosForObjectDetection, transformers.YolosConfig),
        ("vit", VIT, transformers.ViTForImageClassification, transformers.ViTConfig),
    ):
        ref = ref_cls(ref_cfg(**cfg, attn_implementation="eager")).eval()
        randomize(ref, seed=11)
        state = state_dict_numpy(ref)
        with _kernels_off():
            off = _build(name, cfg, state)
        out[name] = (ref, _build(name, cfg, state), off)
    return out


def _uses_kernels(model) -> bool:
    from openmindspore.models.kernels.transformer import SelfAttention

    return any(isinstance(c, SelfAttention) for _, c in model.cells_and_names())


@pytest.mark.parity
@pytest.mark.parametrize("hw", [(64, 48), (50, 70), (83, 61)])
def test_yolos_with_and_without_kernels_matches_reference(models, hw):
    ref, on, off = models["yolos"]
    assert _uses_kernels(on) and not _uses_kernels(off)
    x = np.random.default_rng(sum(hw)).standard_normal((2, 3) + hw).astype(np.float32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x), output_hidden_states=True)
    for ours in (on, off):
        o = ours.predict(x)
        assert max_abs(o.logits, r.logits.numpy()) < TOL
        assert max_abs(o.pred_boxes, r.pred_boxes.numpy()) < TOL
        for a, b in zip(o.hidden_states, r.hidden_states):
            assert max_abs(a, b.numpy()) < TOL


@pytest.mark.parity
@pytest.mark.parametrize("hw", [(32, 32), (45, 37)])
def test_vit_with_and_without_kernels_matches_reference(models, hw):
    ref, on, off = models["vit"]
    assert _uses_kernels(on) and not _uses_kernels(off)
    x = np.random.default_rng(sum(hw)).standard_normal((3, 3) + hw).astype(np.float32)
    interp = hw != (32, 32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x), output_hidden_states=True, interpolate_pos_encoding=interp)
    for ours in (on, off):
        o = ours.predict(x, interpolate_pos_encoding=interp)
        assert max_abs(o.logits, r.logits.numpy()) < TOL
        for a, b in zip(o.hidden_states, r.hidden_states):
            assert max_abs(a, b.numpy()) < TOL


@pytest.mark.parity
def test_compiled_forward_equals_op_by_op(models):
    """``predict(compiled=True)`` (one ``ms.jit`` graph per input shape) equals the op-by-op forward."""
    x = np.random.default_rng(1).standard_normal((1, 3, 50, 70)).astype(np.float32)  # an odd size
    y, c = models["yolos"][1].predict(x), models["yolos"][1].predict(x, compiled=True)
    for a, b in ((y.logits, c.logits), (y.pred_boxes, c.pred_boxes), (y.hidden_states[-1], c.hidden_states[-1])):
        assert max_abs(a, b) < 1e-5
    vit = models["vit"][1]
    v, w = vit.predict(x, interpolate_pos_encoding=True), vit.predict(x, interpolate_pos_encoding=True, compiled=True)
    assert max_abs(v.logits, w.logits) < 1e-5


@pytest.mark.parity
def test_training_gradients_equal_the_fallback(models):
    import mindspore as ms

    x = ms.Tensor(np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32))
    cot = ms.Tensor(np.random.default_rng(6).standard_normal((2, 5)).astype(np.float32))
    grads = []
    for model in models["vit"][1:]:
        model.set_train(True)
        params = model.trainable_params()
        fn = ms.value_and_grad(lambda t, m=model: (m(t)[0] * cot).sum(), None, params)
        value, g = fn(x)
        grads.append((value.asnumpy(), {p.name: gi.asnumpy() for p, gi in zip(params, g)}))
        model.set_train(False)
    (v1, g1), (v2, g2) = grads
    assert abs(float(v1) - float(v2)) < 1e-4 and g1.keys() == g2.keys()
    for name in g1:
        scale = max(1.0, float(np.abs(g2[name]).max()))
        assert max_abs(g1[name], g2[name]) < 1e-4 * scale, name


def test_vit_without_dropout_trains_compiled_like_op_by_op(tmp_path):
    """The one trainer compiles a dropout-free ViT's step (kernels' backwards inside the graph) and follows the
    op-by-op run."""
    from userdata_testing import write_image_folder

    from openmindspore.train import Trainer, config_from_dict

    write_image_folder(tmp_path / "photos", per_class=4, size=(10, 12))
    model = {**{k: v for k, v in VIT.items() if k not in ("image_size", "num_labels")}, "name": "vit", "patch_size": 4}
    runs = []
    for compiled in (True, False):
        cfg = {
            "dataset": {"format": "imagefolder", "path": str(tmp_path / "photos"), "image_size": [8, 8]},
            "model": model,
            "optimizer": {"name": "adamw", "lr": 0.003},
            "batch_size": 4,
            "steps": 2,
            "compile": compiled,
        }
        tr = Trainer(config_from_dict(cfg))
        assert tr.compiled == compiled
        losses = [tr.train_step() for _ in range(2)]
        runs.append((losses, {p.name: p.asnumpy() for p in tr.model.trainable_params()}))
    (l1, p1), (l2, p2) = runs
    assert np.allclose(l1, l2, atol=1e-5) and l1[0] != l1[1] and p1.keys() == p2.keys()
    for name in p1:  # the key bias's true gradient is 0 (softmax ignores a per-row shift): AdamW moves it by
        # the sign of rounding noise, so it is not compared
        if not name.endswith("k_proj.bias"):
            assert max_abs(p1[name], p2[name]) < 1e-5, name
