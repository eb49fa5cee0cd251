"""Baseline augmentation ops: keyed per sample (a sample's result does not depend on its batch), and equal to
MindSpore's ``vision`` ops at the same parameters: the pixel code, the box rules and the draw distributions."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from openmindspore.data import load_dataset
from openmindspore.data.augment import (
    TA_OPS,
    cutmix,
    cutmix_box,
    cutout,
    cutout_box,
    erasing_box,
    mixup,
    one_hot,
    random_erasing,
    random_shift,
    ta_apply,
    ta_space,
    trivial_augment,
)
from openmindspore.data.augment._common import to_uint8

SEED, EPOCH = 3, 2


@pytest.fixture(scope="module")
def mnist():
    d = load_dataset("mnist5k")
    return d, float(d.x_train.min()), float(d.x_train.max())


def _pool(n: int = 40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 1, 12, 12)).astype(np.float32), rng.integers(0, 5, n)


OPS = {
    "shift": lambda x, ids: random_shift(x, ids, SEED, EPOCH, 2),
    "cutout": lambda x, ids: cutout(x, ids, SEED, EPOCH, 5, -1.0, patches=2),
    "random_erasing": lambda x, ids: random_erasing(x, ids, SEED, EPOCH, 0.7, (0.02, 0.33), (0.3, 3.3)),
    "trivial_augment": lambda x, ids: trivial_augment(x, ids, SEED, EPOCH, -4.0, 4.0),
    "cutmix": lambda x, ids: cutmix(x, one_hot(ids % 5, 5), ids, SEED, EPOCH, *_pool())[0],
    "mixup": lambda x, ids: mixup(x, one_hot(ids % 5, 5), ids, SEED, EPOCH, *_pool())[0],
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_sample_is_keyed_alone(name):
    """Augmenting a batch, or its two halves in swapped order (two workers), gives each sample the same
    result; another epoch gives another; the input is left as it was."""
    x, _ = _pool(16)
    ids = np.arange(100, 116)
    before = x.copy()
    whole = OPS[name](x, ids)
    assert np.array_equal(x, before)
    halves = np.concatenate([OPS[name](x[8:], ids[8:]), OPS[name](x[:8], ids[:8])])
    assert np.array_equal(whole, np.concatenate([halves[8:], halves[:8]]))
    assert not np.array_equal(whole, x)
    global EPOCH
    EPOCH, old = EPOCH + 1, EPOCH
    try:
        assert not np.array_equal(OPS[name](x, ids), whole)
    finally:
        EPOCH = old


def test_random_shift_keeps_its_key():
    """``augment_shift`` results from before the op list: key (seed, epoch, id, 7), fill = image minimum."""
    x, _ = _pool(4)
    out = random_shift(x, np.arange(4), 5, 1, 3)
    for i in range(4):
        dy, dx = np.random.default_rng([5, 1, i, 7]).integers(-3, 4, size=2)
        ref = np.full_like(x[i], x[i].min())
        ref[:, max(dy, 0) : 12 + min(dy, 0), max(dx, 0) : 12 + min(dx, 0)] = x[i][
            :, max(-dy, 0) : 12 - max(dy, 0), max(-dx, 0) : 12 - max(dx, 0)
        ]
        assert np.array_equal(out[i], ref)


# ----------------------------------------------------------------------------------------- MindSpore parity
def test_cutout_box_equals_mindspore_erase_and_its_position_law():
    """Our box erases exactly what ``vision.Erase`` erases at that box, and the erased area follows the law
    of MindSpore's ``CutOut`` (top-left uniform in [-L, H] x [-L, W], clipped)."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision

    h = w = 28
    size = 10
    img = np.full((h, w, 3), 200, np.uint8)
    rng = np.random.default_rng(0)
    ours, theirs = [], []
    for k in range(400):
        top, left, bh, bw = cutout_box(rng, h, w, size)
        x = np.full((1, 1, h, w), 200.0, np.float32)
        x[0, :, top : top + bh, left : left + bw] = 0.0
        if bh and bw and k < 20:
            ref = vision.Erase(top, left, bh, bw, 0)(img)
            assert np.array_equal(x[0, 0], ref[:, :, 0].astype(np.float32))
        ours.append(int((x == 0).sum()))
        ds.config.set_seed(k)
        theirs.append(int((vision.CutOut(size, 1)(img)[:, :, 0] == 0).sum()))
    assert max(ours) == max(theirs) == size * size
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01


def test_random_erasing_box_equals_mindspore_from_the_same_draws():
    """Fed Python's ``random`` draws in MindSpore's order, our box erases bitwise what ``RandomErasing`` does."""
    import mindspore.dataset.vision as vision

    img = np.random.default_rng(1).normal(size=(1, 28, 28)).astype(np.float32)
    erased = 0
    for s in range(60):
        random.seed(s)
        ref = vision.RandomErasing(prob=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, max_attempts=10)(img)
        r = random.Random(s)
        r.random()  # the prob draw
        box = erasing_box(r.uniform, r.randint, 28, 28, (0.02, 0.33), (0.3, 3.3), 10)
        ours = img.copy()
        if box is not None:
            top, left, bh, bw = box
            ours[:, top : top + bh, left : left + bw] = 0.0
            erased += 1
        assert np.array_equal(ours, ref), s
    assert erased > 50


def test_trivial_augment_equals_mindspore(mnist):
    """Every output of MindSpore's ``TrivialAugmentWide`` is bitwise one of our (operation, magnitude) results,
    except its translations: MindSpore 2.10 scales the pixel offset by the image size once more (blank
    output); ours translate by the pixels, which ``vision.Affine`` does at translate = pixels / size."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision

    d, lo, hi = mnist
    space = ta_space(31)
    cands = [
        (n, s * m)
        for n in TA_OPS
        if not n.startswith("Translate")
        for m in sorted(set(space[n][0]))
        for s in ((1, -1) if space[n][1] else (1,))
    ]
    matched = blank = 0
    for k in range(30):
        rgb = np.ascontiguousarray(np.repeat(to_uint8(d.x_train[k], lo, hi), 3, axis=2))
        ds.config.set_seed(k)
        out = vision.TrivialAugmentWide()(rgb)
        if not out.any():
            blank += 1
            continue
        assert any(np.array_equal(ta_apply(rgb, *c), out) for c in cands), k
        matched += 1
    assert matched >= 20 and blank <= 10
    rgb = np.ascontiguousarray(np.repeat(to_uint8(d.x_train[0], lo, hi), 3, axis=2))
    for name, t in (("TranslateX", 5.0), ("TranslateY", -7.0)):
        frac = [t / 28, 0.0] if name == "TranslateX" else [0.0, t / 28]
        ref = vision.Affine(0.0, frac, 1.0, [0.0, 0.0], vision.Inter.NEAREST, 0)(rgb)
        assert np.array_equal(ta_apply(rgb, name, t), ref)


def test_trivial_augment_space_is_mindspores():
    space = ta_space(31)
    assert list(space) == sorted(space) == list(TA_OPS)
    assert space["Posterize"][0][:4] == (8.0, 8.0, 8.0, 7.0) and space["Posterize"][0][-1] == 2.0
    assert space["Solarize"][0][0] == 255.0 and space["Solarize"][0][-1] == 0.0
    assert space["Rotate"][0][-1] == 135.0 and space["Rotate"][1] and not space["Posterize"][1]


def test_trivial_augment_draws_uniformly_and_keeps_identity_bitwise(mnist):
    d, lo, hi = mnist
    x = d.x_train[:300]
    out = trivial_augment(x, np.arange(300), 0, 0, lo, hi)
    same = [i for i in range(300) if np.array_equal(out[i], x[i])]
    assert 8 <= len(same) <= 50  # Identity (1/14), plus ops that change nothing on a digit
    assert np.abs(out - x).max() > 1.0


def _mindspore_cutmix(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision

    ds.config.set_seed(seed)
    data = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False).batch(len(images))
    data = data.map(vision.CutMixBatch(vision.ImageBatchFormat.NCHW, 1.0, 1.0), ["image", "label"])
    row = next(data.create_dict_iterator(output_numpy=True, num_epochs=1))
    return row["image"], row["label"]


def test_cutmix_box_and_labels_follow_mindspore():
    """MindSpore's CutMixBatch on images that are constant per sample: each pasted box is one our box rule can
    produce (side ``int(H sqrt(1 - lam))`` clamped), the label weight is ``1 - box area / image area``
    exactly, and the weights' distribution matches ours (lambda ~ Beta(1, 1))."""
    n, h, w = 8, 20, 24
    images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, h, w), np.float32)
    labels = np.eye(n, dtype=np.float32)
    theirs = []
    lams = sorted({float(1 - r * r) for r in np.linspace(0, 1, 4001)})
    reachable = {cutmix_box(h, w, lam, cy, cx) for lam in lams[::8] for cy in range(h + 1) for cx in range(w + 1)}
    for s in range(25):
        out, lab = _mindspore_cutmix(images, labels, s)
        for i in range(n):
            pasted = out[i, 0] != i
            if not pasted.any():
                continue
            rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
            bh, bw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
            assert pasted.sum() == bh * bw
            keep = np.float32(1.0) - np.float32(bh * bw) / np.float32(h * w)
            assert lab[i, i] == keep and abs(lab[i].sum() - 1.0) < 1e-6
            assert (rows[0], cols[0], bh, bw) in reachable
            theirs.append(float(keep))
    x, _ = _pool(1)
    ours = []
    rng = np.random.default_rng(7)
    for _ in range(2000):
        lam, cy, cx = rng.beta(1.0, 1.0), rng.integers(0, h + 1), rng.integers(0, w + 1)
        _, _, bh, bw = cutmix_box(h, w, lam, cy, cx)
        ours.append(1.0 - bh * bw / (h * w))
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01


def test_mixup_equals_mindspore_formula():
    """MixUpBatch's image and label for its lambda (read off its labels) are ours for that lambda."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision

    rng = np.random.default_rng(2)
    images = rng.normal(size=(6, 1, 8, 8)).astype(np.float32)
    labels = np.eye(6, dtype=np.float32)
    ds.config.set_seed(4)
    data = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False).batch(6)
    row = next(data.map(vision.MixUpBatch(1.0), ["image", "label"]).create_dict_iterator(output_numpy=True))
    for i in range(6):
        lam = row["label"][i, i]
        partner = int(np.argmax(np.where(np.arange(6) == i, -1, row["label"][i]))) if lam < 1 else i
        ref = lam * images[i] + (np.float32(1) - lam) * images[partner]
        np.testing.assert_allclose(row["image"][i], ref, rtol=1e-6, atol=1e-6)
    x, y = _pool()
    out, soft = mixup(x[:5], one_hot(y[:5], 5), np.arange(5), 0, 0, x, y, 1.0)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    assert out.dtype == np.float32 and not np.array_equal(out, x[:5])
