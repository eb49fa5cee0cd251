"""Abstention with a finite-sample guarantee: the lowest confidence threshold whose selective accuracy
is certified to reach a target with probability at least 1 - delta.

The model predicts when its (calibrated) confidence is >= the threshold and abstains otherwise.
Given calibration pairs (confidence, correct), two certificates:

- ``sgr``: selection with guaranteed risk (Geifman & El-Yaniv 2017): a binary search over the sorted
  calibration confidences, each step tested with the binomial (Clopper-Pearson) upper bound at level
  delta / ceil(log2 n);
- ``ltt``: Learn-then-Test (Angelopoulos et al. 2021) with fixed-sequence testing: thresholds at the
  k-th highest calibration confidence for k = k0, k0 + 1, ... (k0 = the fewest points that could
  certify with no error), each hypothesis "selective error > 1 - target" rejected by its binomial
  p-value at level delta, stopping at the first that is not rejected.

Both are guarantees for calibration data exchangeable with the test data. When the calibration
predictions come from other models than the one deployed (cross-fitting), :func:`matched_threshold`
carries a threshold over by the share it selects: the deployed model predicts on the same share of an
unlabelled sample of the pool as the certified models did on the calibration labels. When the labels at hand
cannot certify the target, :func:`certify` says so and :func:`labels_needed` estimates how many labels
would, assuming the error rates seen so far.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Certificate",
    "certify",
    "upper_bound",
    "labels_needed",
    "uncorrected_threshold",
    "selective",
    "matched_threshold",
]


@dataclass
class Certificate:
    """The outcome: ``threshold`` is None when nothing could be certified."""

    method: str
    target: float
    delta: float
    n: int
    certified: bool
    threshold: float | None
    calib_coverage: float
    calib_accuracy: float | None
    bound_error: float | None
    more_labels_needed: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def upper_bound(errors: int, n: int, delta: float) -> float:
    """One-sided (1 - delta) Clopper-Pearson upper bound on an error rate seen as ``errors`` of ``n``."""
    from scipy.stats import beta

    if n <= 0:
        return 1.0
    if errors >= n:
        return 1.0
    return float(beta.ppf(1.0 - delta, errors + 1, n - errors))


def _p_value(errors: int, n: int, alpha: float) -> float:
    """P(Binomial(n, alpha) <= errors): small when the error rate is below alpha."""
    from scipy.stats import binom

    return float(binom.cdf(errors, n, alpha)) if n > 0 else 1.0


def _sorted(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.asarray(conf, dtype=np.float64), kind="stable")
    return np.asarray(conf, dtype=np.float64)[order], np.cumsum(1 - np.asarray(correct, dtype=np.int64)[order])


def _at(conf_desc: np.ndarray, cum_err: np.ndarray, k: int) -> tuple[float, int, int]:
    """Threshold at the k-th highest confidence (ties included): (threshold, selected, errors)."""
    thr = float(conf_desc[k - 1])
    m = int(np.searchsorted(-conf_desc, -thr, side="right"))
    return thr, m, int(cum_err[m - 1])


def _sgr(conf_desc: np.ndarray, cum_err: np.ndarray, alpha: float, delta: float) -> int:
    n = len(conf_desc)
    steps = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    lo, hi, best = 0, n, 0  # search k (number of top-confidence points selected) in (lo, hi]
    for _ in range(steps):
        k = (lo + hi + 1) // 2
        if k <= lo:
            break
        _, m, e = _at(conf_desc, cum_err, k)
        if upper_bound(e, m, delta / steps) < alpha:
            best, lo = max(best, m), k
        else:
            hi = k - 1
    return best


def _ltt(conf_desc: np.ndarray, cum_err: np.ndarray, alpha: float, delta: float) -> int:
    """Fixed-sequence testing over k = k0, k0 + 1, ... top-confidence points, k0 the fewest that could
    reject with no error at all (fixed by n, alpha and delta alone, so the sequence is set in advance)."""
    from scipy.stats import binom

    n = len(conf_desc)
    k0 = max(1, math.ceil(math.log(delta) / math.log(1.0 - alpha)))
    if k0 > n:
        return 0
    ks = np.arange(k0, n + 1)
    # selecting by threshold takes every tie of the k-th confidence: m(k) points, e(k) errors
    m = np.searchsorted(-conf_desc, -conf_desc[ks - 1], side="right")
    p = binom.cdf(cum_err[m - 1], m, alpha)
    fail = np.flatnonzero(p > delta)
    last = len(ks) if len(fail) == 0 else int(fail[0])
    return int(m[last - 1]) if last > 0 else 0


def certify(
    conf: np.ndarray, correct: np.ndarray, target: float, delta: float = 0.1, method: str = "ltt"
) -> Certificate:
    """Certify selective accuracy >= ``target`` at the lowest threshold the calibration pairs allow."""
    if method not in ("ltt", "sgr"):
        raise ValueError(f"method={method!r}: expected ltt or sgr")
    alpha, n = 1.0 - float(target), len(conf)
    if n == 0:
        return Certificate(method, target, delta, 0, False, None, 0.0, None, None, labels_needed(conf, correct, target))
    conf_desc, cum_err = _sorted(conf, correct)
    m = (_sgr if method == "sgr" else _ltt)(conf_desc, cum_err, alpha, delta)
    if m == 0:
        more = labels_needed(conf, correct, target, delta, method)
        more = None if more is None else max(1, more)  # the labels at hand did not certify: at least one
        return Certificate(method, target, delta, n, False, None, 0.0, None, None, more)
    e = int(cum_err[m - 1])
    steps = max(1, math.ceil(math.log2(n))) if method == "sgr" and n > 1 else 1
    return Certificate(
        method, target, delta, n, True, float(conf_desc[m - 1]), m / n, 1.0 - e / m, upper_bound(e, m, delta / steps), 0
    )


def labels_needed(
    conf: np.ndarray, correct: np.ndarray, target: float, delta: float = 0.1, method: str = "ltt", limit: int = 10**6
) -> int | None:
    """How many more calibration labels would certify ``target``, if the share selected and the error
    rate among them stayed as observed (errors estimated as (e + 0.5) / (m + 1), not trusting a lucky
    zero): the smallest over thresholds, on a grid of totals 2% apart. None when no threshold's error
    rate is below 1 - target."""
    from scipy.stats import beta, binom

    alpha, n = 1.0 - float(target), len(conf)
    if n == 0:
        return max(1, math.ceil(math.log(delta) / math.log(1.0 - alpha)))
    conf_desc, cum_err = _sorted(conf, correct)
    ks = np.unique(np.linspace(1, n, min(n, 32)).astype(np.int64))
    m = np.searchsorted(-conf_desc, -conf_desc[ks - 1], side="right")
    rate, share = (cum_err[m - 1] + 0.5) / (m + 1), m / n
    keep = rate < alpha
    if not keep.any():
        return None
    rate, share = rate[keep], share[keep]
    totals = np.unique(np.round(n * 1.02 ** np.arange(0, math.ceil(math.log(limit / n) / math.log(1.02)) + 1)))
    mm = np.maximum(1, np.floor(share[:, None] * totals[None, :]))  # (thresholds, totals)
    ee = np.round(rate[:, None] * mm)
    if method == "sgr":
        d = delta / np.maximum(1, np.ceil(np.log2(np.maximum(totals, 2))))[None, :]
        ok = np.where(ee >= mm, 1.0, beta.ppf(1.0 - d, ee + 1, np.maximum(mm - ee, 1e-9))) < alpha
    else:
        ok = binom.cdf(ee, mm, alpha) <= delta
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    if (first < 0).all():
        return None
    return int(totals[first[first >= 0]].min()) - n


def uncorrected_threshold(conf: np.ndarray, correct: np.ndarray, target: float) -> float | None:
    """The lowest threshold whose *empirical* selective accuracy on the pairs reaches ``target`` (no
    finite-sample correction): what a naive rule would pick."""
    if len(conf) == 0:
        return None
    conf_desc, cum_err = _sorted(conf, correct)
    m = np.arange(1, len(conf_desc) + 1)
    ok = (1.0 - cum_err / m >= target) & np.r_[conf_desc[1:] < conf_desc[:-1], True]
    return float(conf_desc[np.flatnonzero(ok)[-1]]) if ok.any() else None


def selective(conf: np.ndarray, correct: np.ndarray, threshold: float | None) -> tuple[float, float | None]:
    """(coverage, selective accuracy) of predicting when ``conf >= threshold`` (accuracy None when
    nothing is predicted; coverage 0 when there is no threshold)."""
    if threshold is None or len(conf) == 0:
        return 0.0, None
    sel = np.asarray(conf) >= threshold
    return float(sel.mean()), (float(np.asarray(correct)[sel].mean()) if sel.any() else None)


def matched_threshold(calib_conf: np.ndarray, threshold: float | None, pool_conf: np.ndarray) -> float | None:
    """The threshold on ``pool_conf`` (another model's confidences on unlabelled pool points) that
    selects the same share of them as ``threshold`` selects of ``calib_conf`` (None stays None)."""
    if threshold is None or len(pool_conf) == 0:
        return None
    share = float(np.mean(np.asarray(calib_conf) >= threshold))
    desc = np.sort(np.asarray(pool_conf, dtype=np.float64))[::-1]
    k = min(len(desc), max(1, math.ceil(share * len(desc))))
    return float(desc[k - 1])
