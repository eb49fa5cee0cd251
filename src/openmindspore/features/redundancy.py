"""The kept set's redundancy check: owns the model-free test of whether a kept feature carries information of its
own beyond its closest kept column, and the rule that drops one that does not.

Why: the elimination keeps a feature whose conditional importance *in the model* has a CI lower bound > 0, or
whose drop the score guard vetoed. A random forest can gain from a column that carries nothing: a noisy copy
kept beside its source, a proxy beside its source, or pure noise (with two or three informative columns, one
more column to split on decorrelates the trees) — the forest's loss is then lower with it, by chance or by
that regularisation, and the feature stays. Whether a feature carries information is a property of the data,
not of the model: a copy or proxy ``K`` of a kept ``S`` is independent of the target *and of every other
column* given ``S``; pure noise is independent of everything.

The test (:func:`added_information`, the machinery of :mod:`openmindspore.features.orient`): for a kept ``K``
and its closest kept column ``S`` (the most rank-correlated one), each other variable ``w`` (the target and
every column of the data but ``K`` and ``S``, dropped ones included) is predicted from ``S`` alone and from
``S`` and ``K`` together (the sum of each column's spline of normal scores; ridge by GCV, a class target by L2
logistic regression; cross-fitted on the selection's folds). Per row, ``gain_w = loss_w(S) - loss_w(S, K)``.
``K`` *carries nothing of its own* when the mean of the per-row gain summed over every variable is below
``-``:data:`Z_NONE` standard errors (evidence of absence, not absence of evidence: a column with no information
costs the learner its extra spline terms on every variable, so the summed gain is clearly negative, while a weak
real feature's small gains offset that cost) and the target's own gain is at most :data:`Z_ADDS` s.e.
A copy, a proxy or noise carries nothing of its own.

The rule (:func:`prune`): the kept features that carry nothing of their own are tried, least informative first
(smallest gain over every variable, in s.e.); one is dropped when the caller's score guard accepts the set
without it (the orientation's guard, :func:`~openmindspore.features.selection.swap_guard`: within one s.e. of
the full set's loss, or no worse than the kept set, paired per row); a vetoed one is not tried again. After a
drop the closest columns and the tests are recomputed; it stops when no candidate is left, or at
``min_features``.

Readmission (:func:`readmit`, the test turned the other way, conditional kind, ``readmit=True``, the default):
as the selection's last step, a *dropped* feature comes back when it carries information of its own beyond its
closest column of the data (kept or dropped) about the *other columns* - the mean per-row gain summed over
every column but the two is above :data:`Z_OWN` s.e. - and predicts the target on its own (the target's gain of
the feature alone over nothing, above :data:`Z_RELEVANT` s.e.). Why: on breast_cancer (30 correlated
measurements of a few tumour properties) the elimination stops at about 6 features whose conditional
importances are each significant, and the logistic regression on them scored 0.011-0.014 below all features
on every seed set: each dropped measurement is explained by the others *in the model*, yet each is a separate
noisy measurement of the same properties, and the model on all of them averages their errors out. A copy,
a proxy (a function of one column plus independent noise) or pure noise carries nothing about the other
columns beyond that column, whatever its chance correlation with the target in this sample, so none comes
back (breast_cancer/logreg and diabetes/forest on spent seeds 240-259 and 280-299: the largest such gain of an
injected column was 0.93 s.e.), and a near-duplicate that adds nothing to its kept twin stays dropped too.
Without the target condition a block of columns that only predict one another would come back.
``readmit=False``: the set of the steps before.

Twins (:func:`twins`): two dropped columns, each the other's closest, with a rank correlation of at least
:data:`TWIN` (0.99) in absolute value - two computations of one measurement, such as breast_cancer's radius and
area of the same contour (0.999) - each add nothing beyond the other, so tested against each other neither came
back, though the pair carries what its kept sibling (the perimeter) does not. Each twin is tested instead beside
its next closest column, its gain summed over the other columns but the twin. A copy or a proxy is no twin of its
source unless its noise is tiny (the benchmark's copy and proxy: rank correlation 0.78-0.96); one that close is
near-identical to it. Measured on spent seeds 400-479 (the readmission alone, on each record's set before it):
breast_cancer/logreg's test accuracy minus all features' went from -0.0004 +- 0.0015 to +0.0018 +- 0.0013, no
injected column came back as a twin in breast_cancer's 160 case-seeds, random forest's accuracy unchanged on
average (+0.0007 both).

On by default (``prune_kept=False`` / ``InterventionSelector(prune=False)`` turn it off). Its first version made
a feature a candidate when it added *no significant* information (both gains at most +1.96 s.e.): on fresh seeds
140-159 that pruned weak real features (``sex``, ``age`` on diabetes, ``magnesium`` on wine: 48 drops of real
features in 100 runs) and cost diabetes/forest's test R^2 2.0 s.e. of the paired difference, so its pre-declared
rule kept it off. Asking for evidence of absence (:data:`Z_NONE`, chosen on those seeds) pruned only injected
columns on fresh seeds 160-179 and met the rule (docs/benchmarks.md, "evidence of absence").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from openmindspore.features.inputs import Task
from openmindspore.features.interventions import _rank_corr
from openmindspore.features.orient import alone_z, gain_z, gains, z_score
from openmindspore.features.proxies import top_explainers

__all__ = [
    "Readmitted",
    "Redundant",
    "added_information",
    "prune",
    "readmit",
    "twins",
    "Z_ADDS",
    "Z_NONE",
    "Z_OWN",
    "Z_RELEVANT",
    "TWIN",
]

#: standard errors of the target's mean gain above which a feature adds information about the target
Z_ADDS = 1.96
#: standard errors by which the mean gain over every variable must be below 0 for "carries nothing of its own"
#: (chosen on development seeds 140-159: the first version's "at most +1.96" pruned weak real features there)
Z_NONE = 1.5
#: s.e. of the mean gain over the other columns above which a dropped feature carries information of its own
Z_OWN = 1.96
#: s.e. of the target's mean gain (the feature alone over nothing) above which a dropped feature predicts it
Z_RELEVANT = 1.96
#: |rank correlation| at or above which two dropped columns, each the other's closest, are twins (module doc)
TWIN = 0.99

#: ``accept(without, current) -> (ok, (loss change, s.e.) vs the full set, (change, s.e.) paired vs current)``
Guard = Callable[[list[int], list[int]], tuple[bool, tuple[float, float], tuple[float, float]]]


@dataclass(frozen=True)
class Redundant:
    """A kept feature ``name`` that carries nothing of its own beyond its closest kept column ``given`` (``z_all``,
    ``z_target``: its gain in s.e., over every variable and on the target alone); ``loss_change`` and
    ``paired``: the score guard's figures for the set without it; ``made``: whether it was dropped."""

    name: str
    given: str
    z_all: float
    z_target: float
    loss_change: tuple[float, float] | None = None
    paired: tuple[float, float] | None = None
    made: bool = False


@dataclass(frozen=True)
class Readmitted:
    """A dropped feature ``name`` tested against its closest column ``given``: ``z_columns``, its gain over
    ``given`` summed over the other columns, and ``z_target``, the target's gain from it alone (in s.e.; None when
    not computed); ``made``: whether it came back; ``proxy_of``: its name before (set by the caller); ``twin``: its
    twin, when it has one (then ``given`` is its closest column but the twin)."""

    name: str
    given: str
    z_columns: float
    z_target: float | None = None
    made: bool = False
    proxy_of: str | None = None
    twin: str | None = None


def twins(X: np.ndarray, kept: np.ndarray, closest: list[list[int]]) -> dict[int, int]:
    """``{d: its twin}`` for the dropped columns whose closest column is dropped too, has ``d`` as its own closest
    and a rank correlation with it of at least :data:`TWIN` in absolute value (module doc); none with fewer than
    three columns (a twin is tested beside a third)."""
    out: dict[int, int] = {}
    if X.shape[1] < 3:
        return out
    for d in [int(c) for c in np.flatnonzero(~kept)]:
        s = closest[d][0]
        if not kept[s] and closest[s][0] == d and abs(float(_rank_corr(X[:, [s]], X[:, d])[0])) >= TWIN:
            out[d] = s
    return out


def readmit(
    X: np.ndarray, y: np.ndarray, task: Task, names: Sequence[str], kept: np.ndarray, fid: np.ndarray
) -> tuple[np.ndarray, list[Readmitted]]:
    """The kept mask with the dropped features that carry information of their own back (module doc), and every
    dropped feature tested, in column order (``made``: those that came back)."""
    names = list(names)
    out = np.asarray(kept, dtype=bool).copy()
    closest = top_explainers(X, 2)
    pairs = twins(X, out, closest)
    tested: list[Readmitted] = []
    for d in [int(c) for c in np.flatnonzero(~out)]:
        twin = pairs.get(d)
        s = closest[d][0] if twin is None else closest[d][1]  # a twin's next closest column
        skip = () if twin is None else (twin,)  # a twin's gain: over the other columns but the twin
        g = gains(X, y, task, [s], [s, d], fid, skip)[:, :-1]
        r = Readmitted(names[d], names[s], z_score(g.sum(axis=1)) if g.shape[1] else 0.0)
        r = r if twin is None else replace(r, twin=names[twin])
        if r.z_columns > Z_OWN:
            z_y = alone_z(X, y, task, d, fid)
            r = replace(r, z_target=z_y, made=z_y > Z_RELEVANT)
        tested.append(r)
    out[[names.index(r.name) for r in tested if r.made]] = True
    return out, tested


def added_information(X: np.ndarray, y: np.ndarray, task: Task, k: int, s: int, fid: np.ndarray) -> tuple[float, float]:
    """How much column ``k`` adds to column ``s`` in predicting every other variable (the target and the other
    columns of ``X``) and the target alone, in s.e. of the mean per-row gain (module doc). Positive: it adds."""
    return gain_z(X, y, task, [s], [s, k], fid)


def prune(
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    kept: np.ndarray,
    fid: np.ndarray,
    accept: Guard,
    min_features: int = 1,
) -> tuple[np.ndarray, list[Redundant]]:
    """The kept mask after the rule's drops (module doc) and every candidate tried, in order (``made``: the
    drops). ``accept(without, current)``: the score guard, given the columns of the set without the candidate
    and of the current kept set."""
    names = list(names)
    kept = np.asarray(kept, dtype=bool).copy()
    tried: list[Redundant] = []
    vetoed: set[int] = set()
    done: dict[tuple[int, int], tuple[float, float]] = {}  # (k, s) -> its test: the same after other drops
    while kept.sum() > max(min_features, 1):
        cols = [int(c) for c in np.flatnonzero(kept)]
        closest = top_explainers(X[:, cols], 1)
        cands = []
        for i, k in enumerate(cols):
            if k in vetoed:
                continue
            s = cols[closest[i][0]]
            if (k, s) not in done:
                done[(k, s)] = added_information(X, y, task, k, s, fid)
            z_all, z_y = done[(k, s)]
            if z_all < -Z_NONE and z_y <= Z_ADDS:
                cands.append((z_all, k, Redundant(names[k], names[s], z_all, z_y)))
        dropped = False
        for _, k, r in sorted(cands, key=lambda c: c[0]):
            ok, full, paired = accept([c for c in cols if c != k], cols)
            tried.append(replace(r, loss_change=full, paired=paired, made=ok))
            if ok:
                kept[k], dropped = False, True
                break
            vetoed.add(k)
        if not dropped:
            break
    return kept, tried
