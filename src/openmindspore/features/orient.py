"""Orientation of a redundant pair: owns the model-free test that decides which of a kept feature and a
dropped feature it removes is the source, and the swap rule.

Why: conditional importance in the model cannot tell a source ``S`` from a proxy ``I = f(S) + noise`` when the
model uses ``I`` better (a linear model on standardised features fits ``tanh(z)`` better than a skewed raw
``S``): given ``I``, ``S`` looks redundant and goes, and the proxy stays. But ``I`` is independent of the target
*and of every other column* given ``S``, so by the data-processing inequality, for every other variable ``W``
(the target or any other column), ``MI(W; S) >= MI(W; I)``: the source predicts everything at least as well
as its proxy. The target alone has little power to show it (measured on diabetes: the proxy's noise costs about
one s.e. of the target's loss); the other columns correlated with the source add the power.

The test (:func:`information_gain`; model-free: no use of the selection's model): for a candidate column ``c``,
each target ``w`` (the target ``y`` and every column but the two compared) is predicted from ``c`` alone by a
flexible 1-D learner, cross-fitted on the selection's folds: ``c`` is mapped to normal scores (ranks on the
training rows, so a monotone reshaping such as ``tanh`` or a skew changes nothing) and a restricted cubic spline
of them (:data:`N_KNOTS` knots) is fitted by ridge with its penalty by GCV (squared error over the variance of
``w``), or, for a class target, by L2 logistic regression (log loss over the entropy of the class shares). Per
row, ``gain_w = loss_w(K) - loss_w(D)`` (positive: ``D`` predicts ``w`` better).

The rule (:func:`orient`): for a kept feature ``K`` and each dropped ``D`` that the naming names ``proxy_of: K``
(only such linked pairs are candidates, so two real correlated features that do not remove each other are
never swapped), ``D`` replaces ``K`` when

* ``D`` is more informative about all the others: the per-row sum of ``gain_w`` over every ``w`` has a mean
  above :data:`Z_SWAP` (one) standard error. One, not 1.96: a source is never less informative than its proxy
  (data-processing inequality), so the direction, not whether the two differ, is what the test settles, and
  the score guard below still vetoes a swap that costs; measured over every recorded test where an injected
  proxy or copy was kept and its source dropped, the source's gain was above 1.96 s.e. in 229 of 285, between
  1 and 1.96 in 32, between 0 and 1 in 24, never at or below 0;
* ``D`` is not less informative about the target: the target's own gain is above ``-Z_TARGET`` s.e. (a source
  is never worse than its proxy about ``y``, and the test of the target alone is weak, so one s.e. is allowed;
  a more *central* real feature that knows less about ``y`` is no source of ``K``);
* the caller's score guard accepts the set the swap leaves. It is asked with the swapped set *and the kept set
  it replaces* (:func:`~openmindspore.features.selection.intervention_elimination`: within one s.e. of the
  full set's loss, *or* no worse than the replaced set, paired per row on the same folds: the mean increase
  below :data:`~openmindspore.features.selection.Z_PAIRED` s.e. of the paired difference). Comparing with the
  full set alone vetoed correct swaps whenever the kept set was already near the one-s.e. limit.

Of several such ``D`` for one ``K``, the one of largest gain over every variable (in s.e.). After a swap the
dropped features are named again against the new kept set
(:func:`~openmindspore.features.selection.intervention_elimination`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from openmindspore.features._ridge import rcs_basis, rcs_knots, ridge_gcv
from openmindspore.features.estimators import row_loss
from openmindspore.features.inputs import Task

__all__ = [
    "Swap",
    "alone_z",
    "gains",
    "gain_z",
    "z_score",
    "information_gain",
    "orient",
    "N_KNOTS",
    "Z_SWAP",
    "Z_TARGET",
]

#: knots of the candidate column's restricted cubic spline
N_KNOTS = 5
#: standard errors of the mean gain over every variable above which the dropped feature is the source
Z_SWAP = 1.0
#: standard errors by which the target's own gain may be below 0
Z_TARGET = 1.0


@dataclass(frozen=True)
class Swap:
    """A tested pair: ``kept`` (a kept feature) and ``by`` (a dropped one it removes); ``z_all``, ``z_target``:
    the mean gain of ``by`` over ``kept`` in s.e., over every variable and on the target alone; when the score
    guard was asked, ``loss_change``: the swapped set's mean loss minus the full set's and the s.e. of the full
    set's, ``paired``: its mean per-row loss increase over the replaced set and the s.e. of that difference;
    ``made``: whether ``by`` replaced ``kept``."""

    kept: str
    by: str
    z_all: float
    z_target: float
    loss_change: tuple[float, float] | None = None
    made: bool = False
    paired: tuple[float, float] | None = None


def _basis(c: np.ndarray, tr: np.ndarray) -> np.ndarray:
    """Normal scores of ``c`` by the ranks among the training rows ``tr``, with their spline terms."""
    s = np.sort(c[tr])
    r = (np.searchsorted(s, c, side="left") + np.searchsorted(s, c, side="right")) / 2.0
    g = norm.ppf((r + 0.5) / (len(s) + 1.0))
    return np.column_stack([g, rcs_basis(g[:, None], rcs_knots(g[tr, None], N_KNOTS))])


def _class_loss(B: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """Log loss on ``te`` of an L2 logistic regression of ``y`` on ``B`` fitted on ``tr``, over the entropy
    of the class shares on ``tr``."""
    mu, sd = B[tr].mean(axis=0), B[tr].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=1.0, max_iter=2000).fit((B[tr] - mu) / sd, y[tr])
    share = np.unique(y[tr], return_counts=True)[1] / tr.sum()
    return row_loss(m, (B[te] - mu) / sd, y[te], "classification") / _entropy(share)


def _entropy(share: np.ndarray) -> float:
    """The entropy of class shares (the scale of a class target's log loss), at least 1e-12."""
    return max(float(-(share * np.log(share)).sum()), 1e-12)


def _losses(C: np.ndarray, W: np.ndarray, y: np.ndarray, task: Task, fid: np.ndarray) -> np.ndarray:
    """Per-row cross-fitted losses ``(n, m + 1)`` of predicting each column of ``W`` and then ``y`` from the
    columns of ``C`` (``(n, c)``: the sum of each one's spline terms; module doc), each over its own scale."""
    out = np.empty((len(C), W.shape[1] + 1))
    for k in np.unique(fid):
        tr, te = fid != k, fid == k
        B = np.column_stack([_basis(C[:, i], tr) for i in range(C.shape[1])])
        for j in range(W.shape[1]):
            out[te, j] = (ridge_gcv(B[tr], W[tr, j], B[te]) - W[te, j]) ** 2 / max(float(W[tr, j].var()), 1e-12)
        if task == "regression":
            out[te, -1] = (ridge_gcv(B[tr], y[tr], B[te]) - y[te]) ** 2 / max(float(y[tr].var()), 1e-12)
        else:
            out[te, -1] = _class_loss(B, y, tr, te)
    return out


def z_score(g: np.ndarray) -> float:
    """The mean of ``g`` in standard errors of the mean (0 when ``g`` is constant)."""
    se = float(g.std(ddof=1)) / np.sqrt(len(g))
    return float(g.mean()) / se if se > 0 else 0.0


def gain_z(
    X: np.ndarray, y: np.ndarray, task: Task, before: list[int], after: list[int], fid: np.ndarray
) -> tuple[float, float]:
    """How much better the columns ``after`` predict than the columns ``before``, in s.e. of the mean per-row
    gain: over every variable (``y`` and the columns of ``X`` in neither set), and over ``y`` alone;
    cross-fitted on the folds ``fid`` (module doc). Positive: ``after`` is the more informative."""
    gain = gains(X, y, task, before, after, fid)
    return z_score(gain.sum(axis=1)), z_score(gain[:, -1])


def gains(
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    before: list[int],
    after: list[int],
    fid: np.ndarray,
    skip: Sequence[int] = (),
) -> np.ndarray:
    """Per-row gains ``(n, m + 1)`` of the columns ``after`` over ``before`` in predicting each column of ``X`` in
    neither set nor ``skip``, then ``y`` (:func:`gain_z`)."""
    W = X[:, [c for c in range(X.shape[1]) if c not in (*before, *after, *skip)]]
    return _losses(X[:, before], W, y, task, fid) - _losses(X[:, after], W, y, task, fid)


def alone_z(X: np.ndarray, y: np.ndarray, task: Task, d: int, fid: np.ndarray) -> float:
    """How much better column ``d`` alone predicts the target than nothing (the training rows' mean, or class
    shares), in s.e. of the mean per-row gain; the learner and scales of :func:`gain_z`."""
    base = np.empty(len(y))
    for k in np.unique(fid):
        tr, te = fid != k, fid == k
        if task == "regression":
            base[te] = (y[te] - y[tr].mean()) ** 2 / max(float(y[tr].var()), 1e-12)
        else:
            cls, counts = np.unique(y[tr], return_counts=True)
            share = counts / tr.sum()
            p = dict(zip(cls.tolist(), share.tolist()))
            base[te] = -np.log(np.clip([p.get(v, 0.0) for v in y[te].tolist()], 1e-6, 1.0)) / _entropy(share)
    return z_score(base - _losses(X[:, [d]], np.empty((len(y), 0)), y, task, fid)[:, -1])


def information_gain(X: np.ndarray, y: np.ndarray, task: Task, k: int, d: int, fid: np.ndarray) -> tuple[float, float]:
    """How much better column ``d`` predicts than column ``k`` (:func:`gain_z`). Positive: ``d`` is the more
    informative."""
    return gain_z(X, y, task, [k], [d], fid)


def orient(
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    kept: np.ndarray,
    proxies: dict[str, str],
    fid: np.ndarray,
    accept: Callable[[list[int], list[int]], tuple[bool, tuple[float, float], tuple[float, float]]],
) -> tuple[np.ndarray, list[Swap]]:
    """The kept mask after the swaps of the rule (module doc) and every pair tested, in order (``made``: the
    swaps). ``proxies``: ``{dropped: kept}`` from the naming; ``accept(swapped, replaced) -> (ok, (loss change,
    s.e.) vs the full set, (loss change, s.e.) paired vs the replaced set)``: the score guard, given the
    swapped set's columns and those of the kept set it replaces."""
    names = list(names)
    kept = np.asarray(kept, dtype=bool).copy()
    tested: list[Swap] = []
    for kname in [n for n, m in zip(names, kept) if m]:
        k = names.index(kname)
        cands = []
        for dname in [d for d, src in proxies.items() if src == kname]:
            z_all, z_y = information_gain(X, y, task, k, names.index(dname), fid)
            cands.append(Swap(kname, dname, z_all, z_y))
        ok = [s for s in cands if s.z_all > Z_SWAP and s.z_target > -Z_TARGET]
        best = max(ok, key=lambda s: s.z_all) if ok else None
        tested += [s for s in cands if s is not best]
        if best is None:
            continue
        trial = kept.copy()
        trial[k], trial[names.index(best.by)] = False, True
        cols = [int(c) for c in np.flatnonzero(trial)]
        accepted, full, paired = accept(cols, [int(c) for c in np.flatnonzero(kept)])
        if accepted:
            kept = trial
        tested.append(Swap(kname, best.by, best.z_all, best.z_target, full, accepted, paired))
    return kept, tested
