"""Deterministic index splits and training subsets."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.data import load_dataset
from openmindspore.data.splits import check_subset_indices, split_indices, stratified_subset
from openmindspore.errors import ConfigError


def test_split_indices_partition_and_stratify():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va, te = split_indices(y, (0.1, 0.2), seed=3, stratify=True)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    assert np.bincount(y[va]).tolist() == [5, 3, 2] and np.bincount(y[te]).tolist() == [10, 6, 4]
    again = split_indices(y, (0.1, 0.2), seed=3, stratify=True)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_stratified_subset_has_the_class_shares_and_depends_only_on_seed_and_size():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    s = stratified_subset(y, 10, seed=0, stratify=True)
    assert len(s) == 10 and np.bincount(y[s]).tolist() == [5, 3, 2]
    assert np.array_equal(s, stratified_subset(y, 10, seed=0, stratify=True))
    assert not np.array_equal(s, stratified_subset(y, 10, seed=1, stratify=True))
    odd = stratified_subset(y, 7, seed=0, stratify=True)  # largest remainder: 3.5, 2.1, 1.4 -> 4, 2, 1
    assert np.bincount(y[odd], minlength=3).tolist() == [4, 2, 1]
    assert len(stratified_subset(np.zeros(9), 4, seed=0, stratify=False)) == 4
    with pytest.raises(ConfigError, match="between 1 and the training split's 100"):
        stratified_subset(y, 101, seed=0, stratify=True)


def test_subset_index_lists_are_checked():
    assert check_subset_indices([5, 1, 3], 10).tolist() == [1, 3, 5]
    with pytest.raises(ConfigError, match="train_subset=10"):
        check_subset_indices([1, 10], 10)
    with pytest.raises(ConfigError, match="at most once"):
        check_subset_indices([1, 1], 10)


def test_dataset_subset_keeps_original_ids():
    d = load_dataset("digits")
    s = d.subset([3, 7, 11], seed=0)
    assert s.x_train.shape[0] == 3 and np.array_equal(s.x_train[1], d.x_train[7])
    assert s.sample_ids(np.array([0, 2])).tolist() == [3, 11]
    assert np.array_equal(s.x_test, d.x_test)  # val and test stay whole
    nested = s.subset([1], seed=0)
    assert nested.sample_ids(np.array([0])).tolist() == [7]
    assert d.sample_ids(np.array([4])).tolist() == [4]
