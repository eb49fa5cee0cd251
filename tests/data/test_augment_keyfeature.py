"""Key-feature ops: the kept region is bitwise untouched, SaliencyMix's label weights sum to 1 and equal the
pasted area, its partner comes from the whole training set; the pipeline moves maps with the images; and
every bad configuration is a ConfigError naming the field, the value and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.data.augment import (
    Augmenter,
    AugmentSource,
    bottom_window,
    keep_augment,
    keep_cutout,
    one_hot,
    saliency_mix,
    top_window,
    window_sums,
)
from openmindspore.data.augment.ops import CutMixOp, KeepCutoutOp, SaliencyMixOp, ShiftOp
from openmindspore.errors import ConfigError


def _batch(n: int = 24, hw: int = 20):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 1, hw, hw)).astype(np.float32)
    maps = rng.random((n, hw, hw)).astype(np.float32)
    for i in range(n):  # a salient blob at a known place
        r, c = rng.integers(0, hw - 6, size=2)
        maps[i, r : r + 6, c : c + 6] += 5.0
    return x, maps


def test_windows_are_the_brute_force_argmax_and_argmin():
    _, maps = _batch(6)
    sums = window_sums(maps, 5, 7)
    for i in range(6):
        m = maps[i].astype(np.float64)
        brute = np.array([[m[r : r + 5, c : c + 7].sum() for c in range(14)] for r in range(16)])
        np.testing.assert_allclose(sums[i], brute, rtol=1e-9)
    rows, cols = top_window(maps, 5, 7)
    lrows, lcols = bottom_window(maps, 5, 7)
    for i in range(6):
        assert sums[i, rows[i], cols[i]] == sums[i].max() and sums[i, lrows[i], lcols[i]] == sums[i].min()


@pytest.mark.parametrize("op", ["keep_cutout", "keep_augment"])
def test_the_kept_region_is_bitwise_untouched(op):
    x, maps = _batch()
    ids = np.arange(50, 74)
    keep = 8
    if op == "keep_cutout":
        out = keep_cutout(x, maps, ids, 0, 1, size=12, keep=keep, fill=-9.0, patches=2)
    else:
        out = keep_augment(x, maps, ids, 0, 1, keep=keep, lo=-4.0, hi=4.0)
    rows, cols = top_window(maps, keep, keep)
    changed_outside = 0
    for i, (r, c) in enumerate(zip(rows, cols)):
        assert np.array_equal(out[i, :, r : r + keep, c : c + keep], x[i, :, r : r + keep, c : c + keep])
        inside = np.zeros((20, 20), bool)
        inside[r : r + keep, c : c + keep] = True
        changed_outside += int((out[i, 0][~inside] != x[i, 0][~inside]).any())
    assert changed_outside >= 12  # the rest was erased / augmented


def test_saliency_mix_weights_sum_to_one_and_equal_the_pasted_area():
    x, maps = _batch()
    rng = np.random.default_rng(9)
    pool_x = (rng.normal(size=(200, 1, 20, 20)) + 10.0).astype(np.float32)  # partners: values far from x
    pool_y = rng.integers(0, 7, 200)
    pool_maps = rng.random((200, 20, 20)).astype(np.float32)
    y = np.arange(24) % 7
    out, soft = saliency_mix(x, one_hot(y, 7), maps, np.arange(24), 0, 0, pool_x, pool_y, pool_maps, alpha=1.0)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=0, atol=1e-6)
    mixed = 0
    for i in range(24):
        pasted = out[i, 0] > 5.0
        area = pasted.sum() / 400
        assert area > 0
        partner_weight = 1.0 - soft[i, y[i]] if soft[i, y[i]] < 1 else 0.0
        other = [k for k in range(7) if k != y[i] and soft[i, k] > 0]
        if other:  # a partner of another class: its weight is the pasted share
            assert abs(soft[i, other[0]] - area) < 1e-6 and abs(partner_weight - area) < 1e-6
            mixed += 1
        rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
        ph, pw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert pasted.sum() == ph * pw  # one rectangle, placed on the least salient window of that size
        lr, lc = bottom_window(maps[i : i + 1], ph, pw)
        assert (rows[0], cols[0]) == (lr[0], lc[0])
    assert mixed >= 15


def test_saliency_mix_partner_is_drawn_from_the_whole_training_set():
    x, maps = _batch(8)
    pool_x = np.stack([np.full((1, 20, 20), 100.0 + k, np.float32) for k in range(500)])
    pool_maps = np.random.default_rng(1).random((500, 20, 20)).astype(np.float32)
    seen = set()
    for epoch in range(40):
        out, _ = saliency_mix(
            x, one_hot(np.zeros(8, int), 3), maps, np.arange(8), 0, epoch, pool_x, np.zeros(500, int), pool_maps
        )
        seen |= {int(round(v)) - 100 for v in np.unique(out) if v >= 100}
    assert len(seen) > 150 and max(seen) > 400  # partners beyond the batch, across the set


def _augmenter(ops, shape=(1, 20, 20), task="classification"):
    return Augmenter(ops, shape, task, 7, (-4.0, 4.0))


def test_pipeline_moves_the_maps_with_a_shift_and_reports_the_offsets():
    x, maps = _batch(10)
    ops = [ShiftOp(name="shift", max=3), KeepCutoutOp(name="keep_cutout", size=10, keep=6)]
    aug = _augmenter(ops)
    assert aug.needs_saliency and not aug.soft
    rows = np.arange(10)
    res = aug(x, np.zeros(10, int), rows, rows + 100, 0, 0, AugmentSource(x, np.zeros(10, int), maps))
    from openmindspore.data.augment._common import shift_image

    for i in range(10):
        dy, dx = (int(v) for v in res.offsets[i])
        shifted = shift_image(x[i], dy, dx, x[i].min())
        smap = shift_image(maps[i], dy, dx, 0.0)
        r, c = (int(v[0]) for v in top_window(smap[None], 6, 6))
        assert np.array_equal(res.x[i, :, r : r + 6, c : c + 6], shifted[:, r : r + 6, c : c + 6])
    assert np.abs(res.offsets).max() > 0


def test_pipeline_soft_labels_sum_to_one_through_two_mixing_ops():
    x, maps = _batch(12)
    y = np.arange(12) % 7
    ops = [SaliencyMixOp(name="saliency_mix"), CutMixOp(name="cutmix", p=0.5)]
    res = _augmenter(ops)(x, y, np.arange(12), np.arange(12), 1, 3, AugmentSource(x, y, maps))
    assert res.soft is not None and res.soft.shape == (12, 7)
    np.testing.assert_allclose(res.soft.sum(1), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ errors
def _config_error(data: dict) -> ConfigError:
    from openmindspore.train import config_from_dict

    with pytest.raises(ConfigError) as e:
        config_from_dict(data)
    return e.value


def test_an_unknown_op_lists_the_valid_ones():
    e = _config_error({"augment": [{"name": "keep_cutot", "size": 8}]})
    assert e.field == "augment[0].name" and e.value == "keep_cutot"
    assert "did you mean keep_cutout?" in str(e) and "saliency_mix" in str(e) and "trivial_augment" in str(e)
    e = _config_error({"augment": [{"size": 8}]})
    assert e.field == "augment[0]" and "name" in e.expected
    e = _config_error({"augment": "cutout"})
    assert e.field == "augment" and "list" in e.expected


@pytest.mark.parametrize(
    "op, field, words",
    [
        ({"name": "keep_cutout", "size": 0}, "augment[0].size", "greater than or equal to 1"),
        ({"name": "shift", "max": 9}, "augment[0].max", "less than or equal to 8"),
        ({"name": "cutmix", "alpha": 0}, "augment[0].alpha", "greater than 0"),
        ({"name": "cutmix", "p": 1.5}, "augment[0].p", "less than or equal to 1"),
        ({"name": "mixup", "p": 0.5}, "augment[0].p", "mixup takes alpha"),
        ({"name": "cutout", "sise": 4}, "augment[0].sise", "did you mean size?"),
        ({"name": "random_erasing", "scale": [0.5, 0.1]}, "augment[0]", "0 < min <= max <= 1"),
    ],
)
def test_parameters_out_of_range(op, field, words):
    e = _config_error({"augment": [op]})
    assert e.field == field and words in str(e), str(e)


def test_order_and_duplicate_shift_errors():
    e = _config_error({"augment": [{"name": "trivial_augment"}, {"name": "keep_cutout"}]})
    assert "keep_cutout" in str(e) and "move keep_cutout before trivial_augment" in str(e)
    e = _config_error({"augment_shift": 2, "augment": [{"name": "shift"}]})
    assert "give the shift once" in str(e)


def test_image_op_on_tabular_data_channels_last_images_and_sizes():
    with pytest.raises(ConfigError) as e:
        _augmenter([CutMixOp(name="cutmix")], shape=(30,))
    assert e.value.field == "augment[0].name" and "tabular" in str(e.value) and "remove augment" in str(e.value)
    with pytest.raises(ConfigError) as e:
        _augmenter([CutMixOp(name="cutmix")], shape=(28, 28, 1))
    assert "NHWC" in str(e.value) and "transpose(0, 3, 1, 2)" in str(e.value)
    with pytest.raises(ConfigError) as e:
        _augmenter([KeepCutoutOp(name="keep_cutout", size=8, keep=30)])
    assert e.value.field == "augment[0].keep" and e.value.value == 30 and "<= 20" in str(e.value)
    with pytest.raises(ConfigError) as e:
        _augmenter([CutMixOp(name="cutmix")], task="regression")
    assert "classification" in str(e.value)
