"""The batched host paths of augmentation give bitwise what the per-sample code they replaced gave: the
generators of :func:`sample_rngs` are NumPy's ``default_rng(key)`` (same state, so every draw is the same),
:func:`shift_images` is :func:`shift_image` per image, and the pipeline's shift + saliency_mix equals the
per-sample reference below (the code before the batched paths, kept here verbatim)."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.data.augment import Augmenter, AugmentSource, bottom_window, one_hot, saliency_mix
from openmindspore.data.augment._common import (
    TAGS,
    _seed_states,
    _vectorised_ok,
    sample_rng,
    sample_rngs,
    shift_image,
    shift_images,
)
from openmindspore.data.augment.keyfeature import patch_side
from openmindspore.data.augment.mixing import MixDraw, mix_labels
from openmindspore.data.augment.ops import SaliencyMixOp, ShiftOp

# ---------------------------------------------------------------- the per-sample reference (before the batched paths)


def ref_shift_offsets(ids, seed, epoch, max_shift, pos=0):
    rows = [sample_rng(seed, epoch, sid, TAGS["shift"], pos).integers(-max_shift, max_shift + 1, size=2) for sid in ids]
    return np.array(rows, dtype=np.int64).reshape(len(ids), 2)


def ref_mix_draws(ids, seed, epoch, tag, pos, n_rows, alpha, p, h, w):
    out = []
    for sid in ids:
        rng = sample_rng(seed, epoch, sid, tag, pos)
        partner = int(rng.integers(n_rows))
        lam = float(np.float32(rng.beta(alpha, alpha)))
        apply = bool(rng.random() < p)
        cy, cx = (int(v) for v in rng.integers(0, [h + 1, w + 1]))
        out.append(MixDraw(apply, partner, lam, cy, cx))
    return out


def ref_saliency_mix(x, soft, maps, ids, seed, epoch, pool_x, pool_y, pool_maps, alpha=1.0, p=1.0, pos=0):
    out, h, w = x.copy(), x.shape[-2], x.shape[-1]
    keep = np.ones(len(x), np.float32)
    draws = ref_mix_draws(ids, seed, epoch, TAGS["saliency_mix"], pos, len(pool_x), alpha, p, h, w)
    for i, d in enumerate(draws):
        if not d.apply:
            continue
        ph, pw = patch_side(h, d.lam), patch_side(w, d.lam)
        peak_r, peak_c = np.divmod(int(pool_maps[d.partner].argmax()), w)
        sr, sc = min(max(peak_r - ph // 2, 0), h - ph), min(max(peak_c - pw // 2, 0), w - pw)
        dr, dc = (int(v[0]) for v in bottom_window(maps[i : i + 1], ph, pw))
        out[i, :, dr : dr + ph, dc : dc + pw] = pool_x[d.partner][:, sr : sr + ph, sc : sc + pw]
        keep[i] = np.float32(1.0) - np.float32(ph * pw) / np.float32(h * w)
    partners = np.array([d.partner for d in draws], dtype=np.int64)
    return out, mix_labels(soft, pool_y[partners], keep)


def ref_shift_then_saliency_mix(x, y, rows, ids, seed, epoch, src, max_shift, alpha, p, classes):
    """The pipeline's [shift, saliency_mix] as it was: per-image shifts of images and maps, then the op."""
    shifts = ref_shift_offsets(ids, seed, epoch, max_shift, 0)
    maps = src.maps[rows]
    x = np.stack([shift_image(x[i], int(dy), int(dx), x[i].min()) for i, (dy, dx) in enumerate(shifts)])
    maps = np.stack([shift_image(maps[i], int(dy), int(dx), 0.0) for i, (dy, dx) in enumerate(shifts)])
    out, soft = ref_saliency_mix(x, one_hot(y, classes), maps, ids, seed, epoch, src.x, src.y, src.maps, alpha, p, 1)
    return out, soft, shifts


# ---------------------------------------------------------------- tests


def _same_state(a: np.random.Generator, b: np.random.Generator) -> bool:
    return a.bit_generator.state == b.bit_generator.state


@pytest.mark.parametrize("k", [1, 4, 5, 7])
def test_batched_seed_states_are_numpys_seed_sequence(k):
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**32, size=(40, k), dtype=np.uint64).astype(np.uint32)
    words[0], words[1] = 0, 2**32 - 1  # edge values
    want = np.array([np.random.SeedSequence([int(v) for v in row]).generate_state(4, np.uint64) for row in words])
    np.testing.assert_array_equal(_seed_states(words), want)
    assert _vectorised_ok()  # so sample_rngs takes the batched path (it falls back to sample_rng otherwise)


@pytest.mark.parametrize(
    ("seed", "epoch", "tag", "pos"),
    [(0, 0, 7, 0), (17005, 3, 18, 0), (17005, 3, 18, 2), (2**32 - 1, 12, 14, 1), (2**40, 1, 7, 0), (5, 2**33, 7, 3)],
)
def test_sample_rngs_are_default_rng_of_each_key(seed, epoch, tag, pos):
    """Same state as ``sample_rng`` (keys with a value >= 2**32 take it one by one), so every draw matches."""
    ids = np.array([0, 1, 2, 499, 3999, 12345, 2**32 - 1, 7, 7], np.int64)
    fast = sample_rngs(seed, epoch, ids, tag, pos)
    slow = [sample_rng(seed, epoch, sid, tag, pos) for sid in ids]
    assert len(fast) == len(ids) and all(_same_state(a, b) for a, b in zip(fast, slow))
    for a, b in zip(fast, slow):
        assert a.integers(-2, 3, size=2).tolist() == b.integers(-2, 3, size=2).tolist()
        assert a.beta(1.0, 1.0) == b.beta(1.0, 1.0) and a.random() == b.random()
    assert fast[0] is not fast[1] and fast[0].bit_generator is not fast[1].bit_generator  # independent streams
    fast[-1].random()  # the two generators of sample 7: drawing from one leaves the other where it was
    assert not _same_state(fast[-1], fast[-2]) and _same_state(fast[-2], slow[-2])
    assert sample_rngs(seed, epoch, np.array([], np.int64), tag, pos) == []


@pytest.mark.parametrize(("lo", "his"), [(0, (29, 29)), (0, (13, 41)), (-2, (3, 3)), (-8, (9, 9)), (0, (2**31, 7))])
def test_scalar_bounded_draws_are_the_array_draw(lo, his):
    """NumPy's bounded draws (ranges < 2**32) each take 32-bit words from the generator's own buffer, so two
    scalar draws give the numbers of one draw with array bounds or ``size=2``, and leave the same state."""
    for sid in range(1500):
        ref, one, two = (sample_rng(17005, 4, sid, 18, 0) for _ in range(3))
        for g in (ref, one, two):
            g.beta(1.0, 1.0)  # a double drawn first, as in mix_draws
        want = ref.integers(lo, list(his)) if his[0] != his[1] else ref.integers(lo, his[0], size=2)
        got = [int(one.integers(lo, his[0])), int(one.integers(lo, his[1]))]
        assert got == [int(v) for v in want], sid
        assert one.bit_generator.state == ref.bit_generator.state
        if his[0] == his[1]:
            assert [int(v) for v in two.integers(lo, list(his))] == got


def test_sample_rngs_refuse_a_negative_key_like_default_rng():
    with pytest.raises(ValueError):
        sample_rngs(-1, 0, np.arange(3), 7)
    with pytest.raises(ValueError):
        sample_rng(-1, 0, 0, 7)


@pytest.mark.parametrize("shape", [(6, 1, 9, 7), (6, 3, 8, 8), (6, 8, 8)])
def test_shift_images_is_shift_image_per_image(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    offsets = np.array([[0, 0], [2, -1], [-3, 3], [1, 0], [9, 0], [-2, -8]], np.int64)  # two move past the edge
    fills = x.reshape(len(x), -1).min(axis=1)
    for fill in (fills, 0.0):
        got = shift_images(x, offsets, fill)
        per = np.broadcast_to(np.asarray(fill, np.float32), (len(x),))
        want = np.stack([shift_image(x[i], int(dy), int(dx), per[i]) for i, (dy, dx) in enumerate(offsets)])
        assert got.dtype == x.dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, want)
    assert shift_images(x[:0], offsets[:0], 0.0).shape == (0, *shape[1:])


def _data(n_rows=120, hw=14):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(n_rows, 1, hw, hw)).astype(np.float32)
    y = rng.integers(0, 10, n_rows)
    maps = np.abs(rng.normal(size=(n_rows, hw, hw))).astype(np.float32)
    maps[::3] = np.round(maps[::3])  # ties: the first window / first peak must still win
    return x, y, maps


@pytest.mark.parametrize(("alpha", "p"), [(1.0, 0.5), (0.4, 1.0)])
def test_saliency_mix_equals_the_per_sample_reference(alpha, p):
    x, y, maps = _data()
    rows = np.arange(7, 71)
    for epoch in range(3):
        got = saliency_mix(x[rows], one_hot(y[rows], 10), maps[rows], rows + 1000, 17005, epoch, x, y, maps, alpha, p)
        want = ref_saliency_mix(
            x[rows], one_hot(y[rows], 10), maps[rows], rows + 1000, 17005, epoch, x, y, maps, alpha, p
        )
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert not np.array_equal(got[0], x[rows])  # something was pasted


def test_pipeline_shift_and_saliency_mix_equal_the_per_sample_reference():
    """The benchmark's combination (shift max 2 + saliency_mix alpha 1, p 0.5): images, soft labels and offsets
    bitwise the reference's over several epochs and batches."""
    x, y, maps = _data()
    aug = Augmenter(
        [ShiftOp(name="shift", max=2), SaliencyMixOp(name="saliency_mix", alpha=1.0, p=0.5)],
        x.shape[1:],
        "classification",
        10,
        (float(x.min()), float(x.max())),
    )
    src = AugmentSource(x, y, maps)
    order = np.random.default_rng(2).permutation(len(x))
    for epoch in range(2):
        for b in range(0, len(x), 64):
            rows = order[b : b + 64]
            ids = rows * 3 + 5
            got = aug(x[rows], y[rows], rows, ids, 17005, epoch, src)
            want = ref_shift_then_saliency_mix(x[rows], y[rows], rows, ids, 17005, epoch, src, 2, 1.0, 0.5, 10)
            np.testing.assert_array_equal(got.x, want[0])
            np.testing.assert_array_equal(got.soft, want[1])
            np.testing.assert_array_equal(got.offsets, want[2])
