"""Backward elimination on importance: owns the drop rule and the record of what was dropped when.

The rule (shared by every importance measure, so they can be compared side by side): compute each
remaining feature's importance with a 95% CI; stop when every lower bound is > 0; otherwise drop one
feature whose lower bound is <= 0 and recompute.

Which one is dropped: :func:`eliminate` takes a ``choose`` callback; the plain rule drops the eligible
feature of smallest importance. :func:`intervention_elimination` orders by each eligible
feature's importance *given its best single explainer* (the conditional draw conditions on one other
column, the one of its two most rank-correlated columns that removes most of it): a feature that one
other feature makes redundant (a noisy copy, a proxy) goes before the feature it copies, whose own
importance given that copy stays clearly positive. Conditional importance (given all the others) still
decides who is eligible and when to stop.

The score guard (:func:`intervention_elimination`, conditional kind; the one-standard-error rule): a drop
is undone, and the feature kept for good, when the mean cross-fitted loss of the set it leaves exceeds
the full set's by more than the standard error of the full set's mean loss (over rows). A feature that is
not significant on its own but whose removal costs score stays. Elimination goes on with the other
eligible features. (The s.e. of the *paired* per-row difference was tried first: it is far smaller,
and with a random forest's noisy log loss it vetoed dropping the injected noise on wine.) ``tolerance``
scales that allowance (in standard errors; 1 by default, 0: no loss at all on the selection's rows) for
every guard here: fewer features against a smaller score loss (docs/features.md has the measured trade-off).

Redundancy check (conditional kind, ``prune_kept=True``, the default): right after the elimination, a kept
feature that carries nothing of its own beyond its closest kept column (a model-free test) is dropped when
:func:`swap_guard` accepts the set without it (:mod:`openmindspore.features.redundancy`).

Naming (conditional kind): after the elimination (and the redundancy check) every dropped feature is named
``proxy_of`` the kept feature whose conditioning removes its importance (:mod:`openmindspore.features.naming`).

Orientation (conditional kind, ``orient_pairs=True``): then a kept feature is swapped for a dropped one named
``proxy_of`` it when the dropped one clearly carries more information about the target and the other
columns (a model-free test, :mod:`openmindspore.features.orient`) and the swap's score guard accepts the
swapped set; after a swap the dropped features are named again against the new kept set. This keeps a source
whose proxy the model happened to use better. The swap's guard (:func:`swap_guard`) accepts the swapped set
when its mean loss is within one s.e. of the full set's (the drop guard) *or* when it is no worse than the kept
set it replaces, paired per row on the same folds: the mean per-row loss increase is below :data:`Z_PAIRED`
standard errors of the paired difference. The full-set guard alone vetoed correct swaps whenever the kept set
was already near its one-s.e. limit (a swap moves the set sideways; it is not a further drop).

Readmission (conditional kind, ``readmit_own=True``, the default): a dropped feature that carries
information of its own about the other columns beyond its closest column, and predicts the target on its own, is
kept again (a model-free test, :func:`~openmindspore.features.redundancy.readmit`). After the other steps, so that
what came before (copies and proxies dropped and named, a proxy kept in its source's place swapped back) is what
``readmit=False`` gives; a feature that comes back loses its ``proxy_of``, and the features still dropped are named
again against the kept set it leaves (a copy whose source came back is named by its source; breast_cancer named the
copy and the proxy of ``radius_error`` by ``worst_perimeter`` when the whole ``radius_error`` cluster had been
dropped);
:attr:`Elimination.named_before_readmission` keeps the names before.

The redundancy check again (``prune_kept=True``), the last step: when the orientation or the readmission changed
the kept set since the first check, the check runs on the final set (:attr:`Elimination.rechecked`) and the
drops are named again (:attr:`Elimination.named_before_recheck` keeps the names before). Why: a proxy that the
elimination kept, whose swap for its source the score guard vetoed, stays beside the source when the
readmission brings the source back, and then carries nothing of its own beside it (breast_cancer/logreg seed
412: the proxy of ``worst_texture``, dropped by this check; on diabetes/random_forest seed 438 the proxy of ``s5``
is a candidate too, but the guard keeps it there as it vetoed the swap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from openmindspore.features.importance import CrossFit
from openmindspore.features.inputs import Task
from openmindspore.features.interventions import Kind, SamplerOptions, fold_ids
from openmindspore.features.naming import name_dropped
from openmindspore.features.orient import Swap, orient
from openmindspore.features.proxies import SetMeasure, measure_set
from openmindspore.features.redundancy import Readmitted, Redundant, prune, readmit

__all__ = ["Drop", "Elimination", "eliminate", "intervention_elimination", "swap_guard", "Z_PAIRED"]

#: standard errors of the paired per-row difference by which a swap may raise the replaced set's mean loss
Z_PAIRED = 1.96

#: ``score(columns) -> (mean, ci)`` for the listed columns (shapes (m,), (m, 2))
Score = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]
#: ``choose(columns, mean, ci, eligible) -> position`` (into ``columns``) of the feature to drop
Choose = Callable[[list[int], np.ndarray, np.ndarray, np.ndarray], int]
#: ``accept(columns) -> (ok, loss change, s.e.)`` for a candidate set just scored
Accept = Callable[[list[int]], tuple[bool, float, float]]


@dataclass
class Drop:
    """One elimination step: ``name`` left with this importance (CI) among ``remaining`` features."""

    name: str
    importance: float
    ci95: tuple[float, float]
    remaining: int
    proxy_of: str | None = None
    #: the mean cross-fitted loss of the set it leaves minus the full set's, and the s.e. of the full set's
    loss_change: tuple[float, float] | None = None


@dataclass
class Elimination:
    """Kept mask over ``names``, the drops in order, and the last importances of the kept features."""

    names: list[str]
    kept: np.ndarray
    drops: list[Drop]
    final_mean: np.ndarray
    final_ci: np.ndarray
    #: features eligible for a drop that the score guard kept (their removal cost more than one s.e.)
    guarded: list[str] = field(default_factory=list)
    #: the orientation's tested pairs; ``made``: a kept feature replaced by a more informative dropped one
    oriented: list[Swap] = field(default_factory=list)
    #: the redundancy check's candidates, in order; ``made``: a kept feature dropped as adding no information
    pruned: list[Redundant] = field(default_factory=list)
    #: the readmission's tests of the dropped features; ``made``: a dropped feature kept again
    readmitted: list[Readmitted] = field(default_factory=list)
    #: ``{dropped feature: source}`` as named before the readmission (the drops are named again against the
    #: kept set the readmission leaves); equal to :attr:`proxies` when nothing came back or readmission is off
    named_before_readmission: dict[str, str] = field(default_factory=dict)
    #: the redundancy check run again on the final kept set (when the orientation or the readmission changed it
    #: since the first check); ``made``: a kept feature dropped as adding no information
    rechecked: list[Redundant] = field(default_factory=list)
    #: ``{dropped feature: source}`` as named before that second check; equal to :attr:`proxies` when it dropped none
    named_before_recheck: dict[str, str] = field(default_factory=dict)

    @property
    def swaps(self) -> dict[str, str]:
        """``{kept feature swapped out: dropped feature swapped in}`` by the orientation."""
        return {s.kept: s.by for s in self.oriented if s.made}

    @property
    def kept_names(self) -> list[str]:
        return [n for n, k in zip(self.names, self.kept) if k]

    @property
    def proxies(self) -> dict[str, str]:
        """``{dropped feature: source}`` for the drops named as proxies."""
        return {d.name: d.proxy_of for d in self.drops if d.proxy_of}


def eliminate(
    names: Sequence[str],
    score: Score,
    min_features: int = 1,
    choose: Choose | None = None,
    accept: Accept | None = None,
) -> Elimination:
    """Backward elimination with the CI rule (module doc). ``choose`` picks the eligible feature to drop
    (default: the one of smallest importance); ``accept`` can veto a drop after the set it leaves was
    scored: the feature is then kept for good and the next eligible one is tried."""
    cols = list(range(len(names)))
    drops: list[Drop] = []
    guarded: list[int] = []
    mean, ci = score(cols)
    while len(cols) > min_features:
        eligible = np.array([i for i in np.flatnonzero(ci[:, 0] <= 0) if cols[i] not in guarded], dtype=np.int64)
        if len(eligible) == 0:
            break
        i = int(eligible[np.argmin(mean[eligible])]) if choose is None else int(choose(cols, mean, ci, eligible))
        trial = cols[:i] + cols[i + 1 :]
        t_mean, t_ci = score(trial)
        ok, change, se = accept(trial) if accept is not None else (True, float("nan"), float("nan"))
        if not ok:
            guarded.append(cols[i])
            score(cols)  # the scorer's state is the current set's again (cached)
            continue
        d = Drop(names[cols[i]], float(mean[i]), (float(ci[i, 0]), float(ci[i, 1])), len(cols))
        d.loss_change = None if accept is None else (change, se)
        drops.append(d)
        cols, mean, ci = trial, t_mean, t_ci
    kept = np.zeros(len(names), dtype=bool)
    kept[cols] = True
    return Elimination(list(names), kept, drops, mean, ci, [names[c] for c in guarded])


def intervention_elimination(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    *,
    kind: Kind = "conditional",
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 500,
    min_features: int = 1,
    explainers: int = 2,
    options: SamplerOptions | None = None,
    orient_pairs: bool = True,
    prune_kept: bool = True,
    tolerance: float = 1.0,
    readmit_own: bool = True,
) -> tuple[Elimination, SetMeasure]:
    """Backward elimination on ``kind`` importance, recomputed (cross-fitted) after each drop; returns it
    and the measurement of the full set (conditional, marginal and pairs).

    With ``kind="conditional"`` each step also measures every feature given each of its ``explainers``
    most rank-correlated columns (same model fits), which orders the drops; the score guard vetoes drops
    and, when ``prune_kept``, the kept features that carry nothing of their own are dropped (the redundancy check);
    then the dropped features are named, then oriented when ``orient_pairs``; then, when ``readmit_own``, the
    dropped features that carry information of their own come back; last, when ``prune_kept`` and the kept set
    changed since, the redundancy check runs again (module doc). ``tolerance``: the
    guards' allowance in standard errors of the full set's mean loss. ``kind="marginal"`` is the plain rule."""
    measured: dict[tuple[int, ...], SetMeasure] = {}
    row_losses: dict[tuple[int, ...], np.ndarray] = {}
    conditional = kind == "conditional"

    def measure(cols: list[int]) -> SetMeasure:
        key = tuple(cols)
        if key not in measured:
            measured[key] = measure_set(
                est,
                X[:, cols],
                y,
                task,
                [names[c] for c in cols],
                kind=kind,
                marginal=not measured,
                explainers=explainers if conditional else 0,
                repeats=repeats,
                folds=folds,
                seed=seed,
                n_boot=n_boot,
                options=options,
            )
        return measured[key]

    def score(cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
        m = measure(cols)
        return m.main.mean, m.main.ci

    def choose(cols: list[int], mean: np.ndarray, ci: np.ndarray, eligible: np.ndarray) -> int:
        return int(eligible[np.argmin(measure(cols).drop_key()[eligible])])

    full = list(range(len(names)))

    def accept(cols: list[int]) -> tuple[bool, float, float]:
        return _within_full(measure(cols).row_loss, measure(full).row_loss, tolerance)

    def accept_swap(cols: list[int], replaced: list[int]) -> tuple[bool, tuple[float, float], tuple[float, float]]:
        return swap_guard(
            measure(cols).row_loss, measure(replaced).row_loss, measure(full).row_loss, tolerance=tolerance
        )

    def losses(cols: list[int]) -> np.ndarray:
        """The set's per-row cross-fitted loss (the same fits as :func:`measure`'s, without its importances)."""
        key = tuple(cols)
        if key in measured:
            return measured[key].row_loss
        if key not in row_losses:
            cf = CrossFit(est, X[:, cols], y, task, folds, seed)
            cf.parts()
            row_losses[key] = cf.base
        return row_losses[key]

    def accept_prune(cols: list[int], current: list[int]) -> tuple[bool, tuple[float, float], tuple[float, float]]:
        return swap_guard(losses(cols), losses(current), measure(full).row_loss, tolerance=tolerance)

    res = eliminate(names, score, min_features, choose if conditional else None, accept if conditional else None)
    if conditional:
        fid = fold_ids(len(X), folds, seed, y if task == "classification" else None)  # the fits' folds

        def check() -> list[Redundant]:
            """The redundancy check on the kept set as it is now, its drops applied; the candidates tried."""
            kept, tried = prune(X, y, task, names, res.kept, fid, accept_prune, min_features)
            gone = [(r.name, r.loss_change) for r in tried if r.made]
            if gone:
                _apply(res, kept, gone, set(), measure([int(c) for c in np.flatnonzero(kept)]), shrink=True)
            return tried

        if prune_kept:
            res.pruned = check()
        checked = res.kept.copy()
        common = {"repeats": repeats, "folds": folds, "seed": seed, "n_boot": n_boot, "options": options}

        def name_drops() -> dict[str, str]:
            """Name the drops against the kept set as it is now (each drop's ``proxy_of``); the names."""
            named = name_dropped(est, X, y, task, names, res.kept_names, [d.name for d in res.drops], **common)
            for d in res.drops:
                d.proxy_of = named.get(d.name)
            return named

        proxies = name_drops()
        if orient_pairs and proxies:
            kept, tested = orient(X, y, task, names, res.kept, proxies, fid, accept_swap)
            res.oriented = tested
            swaps = [s for s in tested if s.made]
            if swaps:
                gone = [(s.kept, s.loss_change) for s in swaps]
                _apply(res, kept, gone, {s.by for s in swaps}, measure([int(c) for c in np.flatnonzero(kept)]))
                proxies = name_drops()
        res.named_before_readmission = dict(proxies)
        if readmit_own:
            kept, readmits = readmit(X, y, task, names, res.kept, fid)
            res.readmitted = [replace(r, proxy_of=proxies.get(r.name)) for r in readmits]
            back = {r.name for r in res.readmitted if r.made}
            if back:
                _apply(res, kept, [], back, measure([int(c) for c in np.flatnonzero(kept)]))
                proxies = name_drops()
        res.named_before_recheck = dict(proxies)
        if prune_kept and not np.array_equal(res.kept, checked):
            res.rechecked = check()
            if any(r.made for r in res.rechecked):
                name_drops()
    return res, measure(full)


def swap_guard(
    swapped: np.ndarray, replaced: np.ndarray, full: np.ndarray, z_paired: float = Z_PAIRED, tolerance: float = 1.0
) -> tuple[bool, tuple[float, float], tuple[float, float]]:
    """The orientation's score guard on per-row cross-fitted losses (same rows, same folds) of the swapped set,
    the kept set it replaces and the full set: ``(ok, (change, s.e.) vs the full set, (change, s.e.) paired vs
    the replaced set)``. ``ok`` when the swapped set's mean loss exceeds the full set's by at most ``tolerance``
    s.e. of the full set's mean, or exceeds the replaced set's by less than ``z_paired`` s.e. of the mean
    per-row difference (module doc)."""
    ok, change, se = _within_full(swapped, full, tolerance)
    diff = swapped - replaced
    p_change, p_se = float(diff.mean()), _se(diff)
    return bool(ok or p_change < z_paired * p_se), (change, se), (p_change, p_se)


def _se(x: np.ndarray) -> float:
    """Standard error of the mean of ``x``."""
    return float(x.std(ddof=1) / np.sqrt(len(x)))


def _within_full(losses: np.ndarray, full: np.ndarray, tolerance: float = 1.0) -> tuple[bool, float, float]:
    """The drop guard on per-row losses: ``(ok, change, s.e.)``, ``ok`` when the mean loss exceeds the full
    set's by at most ``tolerance`` s.e. of the full set's mean."""
    change, se = float(losses.mean() - full.mean()), _se(full)
    return change <= tolerance * se, change, se


def _apply(
    res: Elimination,
    kept: np.ndarray,
    gone: list[tuple[str, tuple[float, float] | None]],
    back_in: set[str],
    m: SetMeasure,
    shrink: bool = False,
) -> None:
    """Update ``res`` for features that left the kept set after the elimination (``gone``: name and the score
    guard's loss change; the orientation's swapped-out or the redundancy check's drops) and dropped ones that
    came back (``back_in``): the kept mask, the drops (one that left is dropped last, with its last importance
    among the ``remaining`` features, one fewer each time when ``shrink``; one back in is no longer dropped),
    guarded, the final importances (``m``: the new kept set's)."""
    old = [int(c) for c in np.flatnonzero(res.kept)]
    drops = [d for d in res.drops if d.name not in back_in]
    for q, (name, change) in enumerate(gone):
        i = old.index(res.names.index(name))
        ci = (float(res.final_ci[i, 0]), float(res.final_ci[i, 1]))
        drops.append(Drop(name, float(res.final_mean[i]), ci, len(old) - (q if shrink else 0), None, change))
    res.kept, res.drops, res.final_mean, res.final_ci = kept, drops, m.main.mean, m.main.ci
    res.guarded = [g for g in res.guarded if kept[res.names.index(g)]]
