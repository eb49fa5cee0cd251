"""Deterministic index splits: the train/val/test split of a dataset and the training subset of a run.

Both are pure functions of the labels and a seed (``numpy.random.default_rng``), stratified for
classification: the same inputs give the same indices on every machine and in every process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["split_indices", "stratified_subset", "check_subset_indices"]


def split_indices(
    y: np.ndarray, fractions: tuple[float, float], seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed train/val/test index split; ``fractions`` = (val, test). Stratified: per class, rounded."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if not stratify:
        perm = rng.permutation(n)
        n_val, n_test = int(round(fractions[0] * n)), int(round(fractions[1] * n))
        return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]
    tr, va, te = [], [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val, n_test = int(round(fractions[0] * len(idx))), int(round(fractions[1] * len(idx)))
        va.append(idx[:n_val])
        te.append(idx[n_val : n_val + n_test])
        tr.append(idx[n_val + n_test :])
    parts = tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in (tr, va, te))
    return parts[0], parts[1], parts[2]


def stratified_subset(y: np.ndarray, size: int, seed: int, stratify: bool) -> np.ndarray:
    """``size`` sorted indices into ``y`` drawn with ``default_rng([seed, size])``.

    Stratified: each class gets its proportional share (largest remainder, so the shares sum to
    ``size``), then that many of its samples uniformly at random."""
    n = len(y)
    if not 1 <= size <= n:
        raise ConfigError(
            "train_subset", size, f"a size between 1 and the training split's {n} samples", "choose a smaller subset"
        )
    rng = np.random.default_rng([seed, size])
    if not stratify:
        return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * size / n
    share = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - share)))  # largest remainder first, ties by class
    share[order[: size - int(share.sum())]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False) for c, k in zip(classes, share) if k]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def check_subset_indices(indices: Sequence[int], n: int) -> np.ndarray:
    """A user's list of train-split indices, checked: in range, no repeats. Returned sorted, int64."""
    arr = np.asarray(list(indices), dtype=np.int64)
    if arr.size == 0:
        raise ConfigError("train_subset", [], "a non-empty list of train-split indices or a size")
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
        raise ConfigError(
            "train_subset", int(bad[0]), f"indices in 0..{n - 1} (the training split has {n} samples)", "drop it"
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ConfigError("train_subset", int(uniq[counts > 1][0]), "each index at most once", "remove the repeat")
    return uniq
