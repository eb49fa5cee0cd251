"""The dense DETR loss of the compiled YOLOS step: equal to the reference DETR loss (values and gradients), its
sums and global normalisers equal to the per-batch ones; the builder's start options (sine-cosine positions)."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.models.yolos.loss import DetrLossWeights, detr_loss, hungarian_match
from openmindspore.models.yolos.train_step import DetrLossSums, dense_detr_loss, detr_norms, pack_matches
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


@pytest.mark.parametrize("counts,q", [((3, 0, 5), 8), ((1, 9, 2), 8), ((0, 0), 4)])
def test_sums_times_global_norms_equal_the_loss_and_split_over_shards(counts, q):
    """``DetrLossSums * detr_norms`` is the DETR loss of the batch; over two shards of the batch, the shards'
    sums times the *whole* batch's norms add up to it (what makes data-parallel detection exact)."""
    import mindspore as ms

    logits, boxes, targets = _inputs(3, counts, q=q)
    w = DetrLossWeights(4, eos_coefficient=0.2, bbox_loss_coefficient=3.0, giou_loss_coefficient=1.5)
    idx = hungarian_match(logits, boxes, targets, w)
    *dense, norms = pack_matches(idx, targets, q, w)
    want = detr_norms([len(t["class_labels"]) for t in targets], q, w.eos_coefficient)
    np.testing.assert_allclose(norms, want, rtol=1e-6)  # the norms follow from the box counts alone
    ref = float(dense_detr_loss(ms.Tensor(logits), ms.Tensor(boxes), *(ms.Tensor(a) for a in (*dense, norms)), w)[0])
    cell = DetrLossSums(w)
    total = 0.0
    for part in (slice(0, 1), slice(1, None)):
        sub = [t for t in targets[part]]
        d = pack_matches(hungarian_match(logits[part], boxes[part], sub, w), sub, q, w)[:4]
        sums = cell((ms.Tensor(logits[part]), ms.Tensor(boxes[part])), *(ms.Tensor(a) for a in d)).asnumpy()
        total += float((sums * want).sum())
    assert total == pytest.approx(ref, rel=1e-5)


def test_sincos_position_embeddings_encode_rows_and_columns():
    from openmindspore.errors import ConfigError
    from openmindspore.models.yolos.build import sincos_position_embeddings

    pe = sincos_position_embeddings((3, 4), 16)
    assert pe.shape == (12, 16) and pe.dtype == np.float32
    rows, cols = pe[:, :8].reshape(3, 4, 8), pe[:, 8:].reshape(3, 4, 8)
    assert np.allclose(rows, rows[:, :1]) and np.allclose(cols, cols[:1])  # row part constant along a row
    assert np.allclose(pe[0, :8], [0, 0, 0, 0, 1, 1, 1, 1])  # sin(0), cos(0)
    assert np.allclose(pe[4, 0], np.sin(1.0)) and np.allclose(pe[1, 8], np.sin(1.0))
    with pytest.raises(ConfigError, match="hidden_size"):
        sincos_position_embeddings((2, 2), 18)


def test_registered_yolos_takes_the_trainers_arguments_and_start_options():
    from openmindspore.errors import ConfigError
    from openmindspore.models import create_model
    from openmindspore.models.yolos.build import sincos_position_embeddings

    small = {k: v for k, v in TINY.items() if k not in ("num_labels", "image_size")}
    m = create_model("yolos", input_shape=(3, 32, 48), num_classes=6, seed=3, pos_init="sincos", **small)
    assert m.config.num_labels == 6 and m.config.image_size == (32, 48) and m.config.seed == 3
    pos = m.vit.embeddings.position_embeddings.asnumpy()[0, 1 : 1 + 4 * 6]
    np.testing.assert_allclose(pos, sincos_position_embeddings((4, 6), 32))
    assert m.graph_safe  # no dropout: the trainer compiles its loss and backward
    assert not create_model("yolos", **TINY, hidden_dropout_prob=0.1).graph_safe
    assert (
        create_model("yolos", input_shape=(3, 32, 48), num_classes=6, **{**small, "num_labels": 2}).config.num_labels
        == 2
    )
    with pytest.raises(ConfigError, match="pos_init"):
        create_model("yolos", pos_init="learned", **TINY)
    with pytest.raises(ConfigError, match=r"\[channels, height, width\]"):
        create_model("yolos", input_shape=(4,), num_classes=3, **small)
