"""Readmission (``features.redundancy.readmit``): a dropped measurement of the property the target depends on, which
carries its own information about the other columns, comes back; a noisy copy, a proxy and pure noise do not,
whatever the target; a block of columns that only predict one another stays out; through the selector,
``readmit=False`` gives the elimination's set and the default adds the readmitted features to it; the drops are
named again against the set the readmission leaves."""

import numpy as np
from sklearn.linear_model import Ridge

from openmindspore.features import InterventionSelector
from openmindspore.features.interventions import fold_ids
from openmindspore.features.orient import alone_z, gains, z_score
from openmindspore.features.proxies import top_explainers
from openmindspore.features.redundancy import Z_OWN, Z_RELEVANT, readmit, twins
from openmindspore.features.selection import intervention_elimination

NAMES = ["m1", "m2", "m3", "copy", "proxy", "noise", "u1", "u2", "u3"]


def _data(n: int = 500, seed: int = 0):
    """``m1``..``m3``: three measurements of a latent ``z`` (each with its own error); ``copy`` = ``m1`` + noise;
    ``proxy`` = tanh(``m1``) + noise; ``noise``; ``u1``..``u3``: three measurements of a latent that has nothing to do
    with the target. ``y`` depends on ``z`` only."""
    rng = np.random.default_rng(seed)
    z, u = rng.standard_normal(n), rng.standard_normal(n)
    m = [z + 0.6 * rng.standard_normal(n) for _ in range(3)]
    copy = m[0] + 0.5 * rng.standard_normal(n)
    proxy = np.tanh(m[0]) + 0.3 * rng.standard_normal(n)
    us = [u + 0.6 * rng.standard_normal(n) for _ in range(3)]
    cols = [*m, copy, proxy, rng.standard_normal(n), *us]
    return np.column_stack(cols), z + 0.3 * rng.standard_normal(n)


def test_measurements_come_back_copies_proxies_noise_and_an_irrelevant_block_do_not():
    X, y = _data()
    kept = np.array([True] + [False] * 8)  # only m1 kept, as an elimination that went too far would leave it
    mask, tested = readmit(X, y, "regression", NAMES, kept, fold_ids(len(X), 5, 0))
    back = {NAMES[i] for i in np.flatnonzero(mask & ~kept)}
    assert back == {"m2", "m3"}, [(t.name, t.given, t.z_columns, t.z_target) for t in tested]
    by = {t.name: t for t in tested}
    assert [t.name for t in tested] == NAMES[1:]  # every dropped feature tested, in column order
    for name in ("copy", "proxy", "noise"):  # nothing of their own about the other columns
        assert by[name].z_columns <= Z_OWN and not by[name].made
    for name in ("u1", "u2", "u3"):  # their own information about each other, none about the target
        assert by[name].z_columns > Z_OWN and by[name].z_target is not None and by[name].z_target <= Z_RELEVANT
    assert mask[0] and kept.sum() == 1  # the kept feature stays; the caller's mask is not changed


def test_alone_z_sees_a_predictive_column_and_not_noise_for_classes_too():
    X, y = _data(seed=1)
    fid = fold_ids(len(X), 5, 1)
    assert alone_z(X, y, "regression", 1, fid) > 5 > abs(alone_z(X, y, "regression", 5, fid))
    yc = (y > 0).astype(int)
    fid = fold_ids(len(X), 5, 1, yc)
    assert alone_z(X, yc, "classification", 1, fid) > 5 > abs(alone_z(X, yc, "classification", 5, fid))


def test_selector_readmits_by_default_and_not_when_asked():
    """Twelve noisy measurements (six of each of two latents the target adds up) and a noise column: the
    elimination keeps some measurements; the default brings back dropped ones, never the noise."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 2))
    X = np.column_stack([z[:, i // 6] + 1.5 * rng.standard_normal(300) for i in range(12)] + [rng.standard_normal(300)])
    y = z.sum(axis=1) + 0.5 * rng.standard_normal(300)
    off = InterventionSelector(readmit=False, repeats=3, n_boot=200).fit(X, y)
    on = InterventionSelector(repeats=3, n_boot=200).fit(X, y)
    assert off.readmitted_ == [] and not off.get_support().all()
    assert on.readmitted_ and "x13" not in on.readmitted_
    names = [f"x{i + 1}" for i in range(X.shape[1])]
    assert np.array_equal(on.get_support(), off.get_support() | np.isin(names, on.readmitted_))
    assert not on.get_support()[12]


def test_drops_are_named_again_against_the_set_the_readmission_leaves():
    """Two latents measured three times each (``a1..a3`` of z1, ``b1..b3`` of z2; corr 0.7) and a noisy copy of
    ``a1``; the target mostly follows z2. When the elimination dropped ``a1``, the copy was named by another ``a``;
    once ``a1`` comes back, the copy is named by its source. Every name is a feature of the final kept set."""
    names = ["a1", "a2", "a3", "b1", "b2", "b3", "copy"]
    renamed = 0
    for seed in range(6, 16):  # on 6 and 15 the elimination dropped a1 and the copy was named by a2 or a3
        rng = np.random.default_rng(seed)
        z2 = rng.standard_normal(300)
        z1 = 0.7 * z2 + np.sqrt(1 - 0.49) * rng.standard_normal(300)
        a = [z1 + 0.3 * rng.standard_normal(300) for _ in range(3)]
        b = [z2 + 0.5 * rng.standard_normal(300) for _ in range(3)]
        X = np.column_stack([*a, *b, a[0] + 0.3 * rng.standard_normal(300)])
        y = z2 + 0.3 * z1 + 0.5 * rng.standard_normal(300)
        res, _ = intervention_elimination(Ridge(), X, y, "regression", names, repeats=3, n_boot=200, seed=seed)
        kept = set(res.kept_names)
        assert set(res.proxies.values()) <= kept and not kept & set(res.proxies)
        if "a1" in kept and "copy" not in kept:
            assert res.proxies.get("copy") == "a1", (seed, res.named_before_readmission, res.proxies)
        before = res.named_before_readmission.get("copy")
        renamed += before is not None and before != res.proxies.get("copy")
    assert renamed  # the situation arose: a name given before the readmission changed


def test_twins_are_tested_beside_their_next_closest_column():
    """``m2`` and ``t2``, two computations of one measurement (``t2`` a monotone function of ``m2``, rank correlation
    above 0.99, as breast_cancer's radius and area), both dropped: each adds nothing beyond the other, so tested
    against each other neither came back; as twins each is tested beside its next closest column (the other
    columns but the twin) and both come back. A noisy copy and a proxy of the dropped ``m3`` are no twins."""
    X, y = _data(seed=2)
    rng = np.random.default_rng(102)  # not the data's own stream
    X = np.column_stack([X, np.exp(X[:, 1] / 3) + 0.002 * rng.standard_normal(len(X))])
    X[:, 3] = X[:, 2] + 0.5 * rng.standard_normal(len(X))  # the copy and the proxy of m3, dropped too
    X[:, 4] = np.tanh(X[:, 2]) + 0.3 * rng.standard_normal(len(X))
    names = [*NAMES, "t2"]
    kept = np.array([True] + [False] * 9)
    fid = fold_ids(len(X), 5, 2)
    assert twins(X, kept, top_explainers(X, 2)) == {1: 9, 9: 1}
    mask, tested = readmit(X, y, "regression", names, kept, fid)
    by = {t.name: t for t in tested}
    assert by["m2"].twin == "t2" and by["t2"].twin == "m2" and by["m2"].given != "t2"
    assert by["m2"].made and by["t2"].made, [(t.name, t.given, t.z_columns, t.z_target) for t in tested]
    assert {names[i] for i in np.flatnonzero(mask & ~kept)} == {"m2", "m3", "t2"}
    # without the twin rule each is tested against the other: nothing of its own, so neither came back
    for d, s in ((1, 9), (9, 1)):
        assert z_score(gains(X, y, "regression", [s], [s, d], fid)[:, :-1].sum(axis=1)) <= Z_OWN
