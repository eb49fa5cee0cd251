"""The kept set's redundancy check (``features.redundancy``): a noisy copy kept beside its source and pure noise add
no information beyond their closest kept column and are dropped when the score guard accepts; the source adds
information beyond its copy; two real correlated features that are both informative are both kept; a vetoed
candidate stays and is not tried again."""

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openmindspore.features import intervention_elimination
from openmindspore.features.importance import CrossFit
from openmindspore.features.interventions import fold_ids
from openmindspore.features.redundancy import Z_ADDS, Z_NONE, added_information, prune
from openmindspore.features.selection import swap_guard

NAMES = ["s", "b", "w1", "w2", "w3", "w4", "w5", "w6", "copy", "noise"]
COPY, NOISE = 8, 9
#: s, b, the copy and the noise kept; the other columns dropped
KEPT = np.array([True, True] + [False] * 6 + [True, True])


def _data(n: int = 400, seed: int = 0):
    """``s`` and ``b`` informative, ``w1``..``w6`` other columns of ``s`` and ``b`` (the data's other variables,
    as in the benchmark's tables), ``copy`` = ``s`` + noise (corr 0.89), ``noise`` independent of everything."""
    rng = np.random.default_rng(seed)
    s, b = rng.standard_normal(n), rng.standard_normal(n)
    w = [
        a * s + c * b + 0.7 * rng.standard_normal(n)
        for a, c in ((1, 0), (1, 0.5), (0.5, 1), (0, 1), (1, -1), (0.7, 0.3))
    ]
    copy = s + 0.5 * rng.standard_normal(n)
    y = s + 0.7 * b + 0.5 * rng.standard_normal(n)
    return np.column_stack([s, b, *w, copy, rng.standard_normal(n)]), y


def _guard(X: np.ndarray, y: np.ndarray):
    def loss(cols):
        cf = CrossFit(make_pipeline(StandardScaler(), Ridge()), X[:, cols], y, "regression", 5, 0)
        cf.parts()
        return cf.base

    full = loss(list(range(X.shape[1])))
    asked = []

    def accept(without, current):
        asked.append((without, current))
        return swap_guard(loss(without), loss(current), full)

    return accept, asked


def test_a_copy_or_noise_adds_nothing_beyond_the_source_and_the_source_adds_beyond_its_copy():
    X, y = _data()
    fid = fold_ids(len(X), 5, 0)
    z_all, z_y = added_information(X, y, "regression", COPY, 0, fid)  # the copy given its source
    assert z_all < -Z_NONE and z_y <= Z_ADDS  # it costs the learner more than it brings, over every variable
    z_all, z_y = added_information(X, y, "regression", NOISE, 1, fid)  # the noise given b
    assert z_all < -Z_NONE and z_y <= Z_ADDS
    z_all, z_y = added_information(X, y, "regression", 0, COPY, fid)  # the source given its copy: clearly more
    assert z_all > 3.0 and z_y > 3.0


def test_a_copy_and_noise_kept_beside_the_source_are_dropped():
    X, y = _data()
    accept, asked = _guard(X, y)
    new, tried = prune(X, y, "regression", NAMES, KEPT, fold_ids(len(X), 5, 0), accept)  # copy, noise beside s, b
    assert np.flatnonzero(new).tolist() == [0, 1]
    made = {t.name: t.given for t in tried if t.made}
    assert made.keys() == {"copy", "noise"} and made["copy"] == "s"
    assert all(t.name in ("copy", "noise") for t in tried)  # s and b add information: never candidates
    assert asked[0][1] == [0, 1, COPY, NOISE]  # the guard is asked with the set without it and the current set


def test_two_real_correlated_informative_features_are_both_kept():
    rng = np.random.default_rng(2)
    n = 300
    a = rng.standard_normal(n)
    b = 0.8 * a + 0.6 * rng.standard_normal(n)  # corr 0.8 with a
    c = a + 0.5 * rng.standard_normal(n)
    y = a + b + 0.5 * rng.standard_normal(n)
    X = np.column_stack([a, b, c])
    accept, asked = _guard(X, y)
    new, tried = prune(X, y, "regression", ["a", "b", "c"], np.array([True, True, False]), fold_ids(n, 5, 0), accept)
    assert new.tolist() == [True, True, False] and tried == [] and asked == []
    elim, _ = intervention_elimination(
        Ridge(), X, y, "regression", ["a", "b", "c"], repeats=3, n_boot=300, prune_kept=True
    )
    assert {"a", "b"} <= set(elim.kept_names) and not any(t.made for t in elim.pruned)


def test_a_vetoed_candidate_stays_and_is_tried_once():
    X, y = _data()
    kept = KEPT
    calls = []

    def veto(without, current):
        calls.append(without)
        return False, (9.0, 1.0), (9.0, 1.0)

    new, tried = prune(X, y, "regression", NAMES, kept, fold_ids(len(X), 5, 0), veto)
    assert new.tolist() == kept.tolist()
    assert sorted(t.name for t in tried) == ["copy", "noise"] and not any(t.made for t in tried)
    assert len(calls) == 2
