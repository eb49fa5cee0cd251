"""The robustness sets: registered, deterministic, on mnist5k's split and statistics, boxes in meta; and no
augmentation op calls their generator."""

from __future__ import annotations

import ast
import hashlib

import numpy as np
import pytest

from oms_testing import ROOT
from openmindspore.data import clutter, list_datasets, load_dataset


@pytest.fixture(scope="module")
def sets():
    return load_dataset("mnist5k"), load_dataset("mnist5k_clutter"), load_dataset("mnist5k_spurious")


def _sha(d) -> str:
    h = hashlib.sha256()
    for a in (d.x_train, d.x_val, d.x_test, d.meta["test_boxes"]):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_registered_and_deterministic(sets):
    names = {d.name: d for d in list_datasets()}
    assert {"mnist5k_clutter", "mnist5k_spurious"} <= set(names)
    _, c, s = sets
    clutter.mnist5k_raw.cache_clear()
    again = names["mnist5k_clutter"].loader(0), names["mnist5k_spurious"].loader(0)
    assert _sha(again[0]) == _sha(c) and _sha(again[1]) == _sha(s)
    assert np.array_equal(again[1].meta["train_marks"], s.meta["train_marks"])
    other = names["mnist5k_clutter"].loader(1)  # another split seed: another split
    assert not np.array_equal(other.x_test, c.x_test)


def test_standardised_with_mnist5ks_training_statistics(sets):
    m, c, s = sets
    raw = clutter.mnist5k_raw(0)
    tr = raw["splits"][0]
    assert c.meta["mean"] == s.meta["mean"] == float(raw["x"][tr].mean())
    assert np.array_equal(c.x_train, m.x_train) and np.array_equal(c.x_val, m.x_val)  # unchanged, bitwise
    assert np.array_equal(c.y_test, m.y_test) and np.array_equal(s.y_train, m.y_train)
    # not their own statistics: the spurious training split is no longer zero-mean
    assert abs(float(s.x_train.mean())) > 1e-3 and abs(float(m.x_train.mean())) < 1e-4
    # wherever no mark is drawn, a spurious training pixel is mnist5k's pixel
    marked = np.zeros_like(s.x_train, bool)
    for i, k in enumerate(s.meta["train_marks"]):
        r, col = clutter.MARK_POSITIONS[k]
        marked[i, 0, r : r + 3, col : col + 3] = True
    assert np.array_equal(s.x_train[~marked], m.x_train[~marked])
    black = (0.0 - raw["mean"]) / raw["std"]
    assert np.isclose(c.x_test.min(), black, atol=1e-6)


def test_clutter_test_digits_are_shifted_among_fragments_with_boxes(sets):
    m, c, _ = sets
    boxes = c.meta["test_boxes"]
    assert boxes.shape == (len(c.x_test), 4) and c.meta["box_format"] == "top,left,bottom,right"
    own = clutter.ink_boxes(clutter.mnist5k_raw(0)["x"][clutter.mnist5k_raw(0)["splits"][2]])
    dy, dx = boxes[:, 0] - own[:, 0], boxes[:, 1] - own[:, 1]
    assert np.abs(dy).max() <= 4 and np.abs(dx).max() <= 4 and (dy != 0).mean() > 0.5
    black = c.x_test.min()
    corners = [c.x_test[:, 0, :8, :8], c.x_test[:, 0, :8, -8:], c.x_test[:, 0, -8:, :8], c.x_test[:, 0, -8:, -8:]]
    assert all(float((k > black).mean()) > 0.1 for k in corners)  # fragments in every corner
    assert float((m.x_test[:, 0, :8, :8] > black).mean()) < 0.02  # ... where mnist5k has almost no ink
    assert set(c.meta) >= {"train_boxes", "val_boxes", "test_boxes"}


def test_spurious_marks_agree_ninety_percent_in_training_and_are_random_in_test(sets):
    _, _, s = sets
    agree_train = float((s.meta["train_marks"] == s.y_train).mean())
    agree_test = float((s.meta["test_marks"] == s.y_test).mean())
    assert 0.87 < agree_train < 0.93 and agree_test < 0.2
    assert len(np.unique(s.meta["test_marks"])) == 10


def test_no_augmentation_op_calls_the_clutter_generator(monkeypatch):
    """Statically: nothing under data/augment imports data.clutter. At run time: with the generator's
    functions made to raise, every op still runs."""
    aug_dir = ROOT / "src" / "openmindspore" / "data" / "augment"
    for path in aug_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        assert not any(m and "clutter" in m for m in mods), path.name
    for fn in ("clutter_images", "spurious_images", "_fragment", "_shift", "mnist5k_raw"):
        monkeypatch.setattr(clutter, fn, lambda *a, **k: (_ for _ in ()).throw(AssertionError("called")))
    from openmindspore.data.augment import OP_NAMES, Augmenter, AugmentSource
    from openmindspore.data.augment.ops import OP_MODELS

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 1, 16, 16)).astype(np.float32)
    y = np.arange(6) % 3
    maps = rng.random((6, 16, 16)).astype(np.float32)
    for name in OP_NAMES:
        aug = Augmenter([OP_MODELS[name](name=name)], (1, 16, 16), "classification", 3, (-3.0, 3.0))
        aug(x, y, np.arange(6), np.arange(6), 0, 0, AugmentSource(x, y, maps))
