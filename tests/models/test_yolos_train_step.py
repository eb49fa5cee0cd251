"""The compiled YOLOS training step: dense loss == reference DETR loss; compiled == PyNative along a trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.models.yolos.loss import DetrLossWeights, detr_loss, hungarian_match
from openmindspore.models.yolos.train_step import DetrTrainStep, dense_detr_loss, optimizer_for, pack_matches
from vision_testing import detr_inputs

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    patch_size=8,
    num_detection_tokens=5,
    use_mid_position_embeddings=True,
    num_labels=4,
    image_size=[32, 48],
)


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


_inputs = detr_inputs


@pytest.mark.parametrize("seed,counts", [(0, (3, 0, 5)), (4, (1, 2, 8)), (5, (0, 0, 0))])
def test_dense_loss_equals_detr_loss(seed, counts):
    import mindspore as ms

    logits, boxes, targets = _inputs(seed, counts)
    w = DetrLossWeights(4, eos_coefficient=0.2)
    idx = hungarian_match(logits, boxes, targets, w)
    packed = [ms.Tensor(a) for a in pack_matches(idx, targets, logits.shape[1], w)]
    ref = {}

    def f_ref(lg, bx):
        total, d = detr_loss(lg, bx, targets, w, indices=idx)
        ref.update(d)
        return total

    def f_dense(lg, bx):
        return dense_detr_loss(lg, bx, *packed, w)

    lt, bt = ms.Tensor(logits), ms.Tensor(boxes)
    l_ref, g_ref = ms.value_and_grad(f_ref, grad_position=(0, 1))(lt, bt)
    total, ce, l1, giou = f_dense(lt, bt)
    g = ms.grad(lambda a, b: f_dense(a, b)[0], grad_position=(0, 1))(lt, bt)
    assert abs(float(total.asnumpy()) - float(l_ref.asnumpy())) < 1e-5
    for name, v in (("loss_ce", ce), ("loss_bbox", l1), ("loss_giou", giou)):
        assert abs(float(v.asnumpy()) - float(ref[name].asnumpy())) < 1e-5, name
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), atol=1e-6)


def _batches():
    from openmindspore.models.yolos.finetune import _targets
    from openmindspore.models.yolos.processor import YolosImageProcessor
    from openmindspore.models.yolos.synthetic import make_synthetic_detection

    imgs, coco = make_synthetic_detection(8, (32, 48), max_objects=3, seed=1)
    enc = YolosImageProcessor(shortest_edge=32, longest_edge=48)(imgs, _targets(coco))
    x = np.asarray(enc["pixel_values"], np.float32)
    tg = [{"class_labels": t["class_labels"], "boxes": t["boxes"].astype(np.float32)} for t in enc["labels"]]
    return [(x[:4], tg[:4]), (x[4:], tg[4:])]


def test_compiled_step_follows_the_pynative_trajectory():
    """Same losses, parameters and gradients as the op-by-op step after several optimizer updates
    (a compiled graph must see the updated parameters and the per-step learning rate), and the loss is
    the reference ``detr_loss`` of the current parameters."""
    import mindspore as ms

    from openmindspore.models import create_model

    data = _batches()
    runs = {}
    for compiled in (False, True):
        model = create_model("yolos", **TINY)
        w = DetrLossWeights.from_config(model.config)
        step = DetrTrainStep(model, w, optimizer_for(model, [0.0, 3e-3, 1e-2, 5e-3, 5e-3], 1e-2), 1.0, compiled)
        p0 = {p.name: p.asnumpy().copy() for p in model.trainable_params()}
        losses = [step(ms.Tensor(data[0][0]), data[0][1])]
        frozen = {p.name: p.asnumpy().copy() for p in model.trainable_params()}
        losses += [step(ms.Tensor(x), t) for x, t in (data[1], data[0], data[1])]
        loss, grads = step.value_and_grad(ms.Tensor(data[0][0]), data[0][1])
        params = {p.name: p.asnumpy().copy() for p in model.trainable_params()}
        runs[compiled] = losses + [float(loss.asnumpy())], [g.asnumpy() for g in grads], params
        logits, boxes = model(ms.Tensor(data[0][0]))[:2]  # reported loss == reference loss of these params
        assert abs(float(loss.asnumpy()) - float(detr_loss(logits, boxes, data[0][1], w)[0].asnumpy())) < 1e-5
        assert all(np.array_equal(p0[k], frozen[k]) for k in p0)  # lr 0 at step 0: no change
        assert max(float(np.abs(p0[k] - params[k]).max()) for k in p0) > 1e-3  # later steps did move
        assert "vit.embeddings.detection_tokens" in params  # names are not prefixed
    (l_e, g_e, p_e), (l_c, g_c, p_c) = runs[False], runs[True]
    np.testing.assert_allclose(l_c, l_e, rtol=1e-4)
    for a, b in zip(g_c, g_e):
        np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, float(np.abs(b).max())))
    for k in p_e:
        np.testing.assert_allclose(p_c[k], p_e[k], atol=1e-5)


def test_compiled_step_rejects_dropout():
    from openmindspore.errors import ConfigError
    from openmindspore.models import create_model

    model = create_model("yolos", **TINY, hidden_dropout_prob=0.1)
    w = DetrLossWeights.from_config(model.config)
    with pytest.raises(ConfigError, match="train.compile"):
        DetrTrainStep(model, w, optimizer_for(model, [1e-3], 0.0), 1.0, compiled=True)


def test_sincos_position_embeddings_encode_rows_and_columns():
    from openmindspore.errors import ConfigError
    from openmindspore.models.yolos.finetune import sincos_position_embeddings

    pe = sincos_position_embeddings((3, 4), 16)
    assert pe.shape == (12, 16) and pe.dtype == np.float32
    rows, cols = pe[:, :8].reshape(3, 4, 8), pe[:, 8:].reshape(3, 4, 8)
    assert np.allclose(rows, rows[:, :1]) and np.allclose(cols, cols[:1])  # row part constant along a row
    assert np.allclose(pe[0, :8], [0, 0, 0, 0, 1, 1, 1, 1])  # sin(0), cos(0)
    assert np.allclose(pe[4, 0], np.sin(1.0)) and np.allclose(pe[1, 8], np.sin(1.0))
    with pytest.raises(ConfigError, match="hidden_size"):
        sincos_position_embeddings((2, 2), 18)


def test_hflip_mirrors_images_and_boxes():
    from openmindspore.models.yolos.finetune import _hflip

    x = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    t = [{"class_labels": np.array([1]), "boxes": np.array([[0.2, 0.5, 0.1, 0.3]], np.float32)} for _ in range(2)]
    for seed in range(8):
        y, u = _hflip(x, t, np.random.default_rng(seed))
        for i in range(2):
            flipped = not np.array_equal(y[i], x[i])
            assert np.array_equal(y[i], x[i, ..., ::-1] if flipped else x[i])
            assert np.allclose(u[i]["boxes"][0], [0.8 if flipped else 0.2, 0.5, 0.1, 0.3])
        assert np.allclose(t[0]["boxes"][0, 0], 0.2)  # inputs untouched
