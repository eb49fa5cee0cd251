"""Stopping rules: when more labels stop paying, decided from signals the loop records every round.

- ``stabilizing`` (stabilizing predictions, Bloodgood & Vijay-Shanker 2009): Cohen's kappa between the
  predictions of consecutive rounds on a fixed, never-labelled-on-purpose stop set; stop when its mean
  over the last ``window`` rounds reaches ``kappa``.
- ``max-uncertainty`` (Zhu et al. 2008): stop when the most uncertain unlabelled pool point's
  calibrated uncertainty (1 - max p) falls below ``max_uncertainty``.
- ``auto``: stabilizing predictions over a longer horizon: the current model agrees (kappa >= ``kappa``)
  with *each* of the models of the last ``auto_window`` rounds on the stop set, i.e. the last
  ``auto_window * batch`` labels changed almost no prediction. Consecutive-round kappa alone fires early
  when each round changes little but the changes add up.

Rules are pure functions of the round rows (``kappa``, ``kappa_window_min``, ``max_uncertainty``), so a
benchmark can evaluate every rule on a run made with a fixed budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RULES", "cohen_kappa", "fired", "first_stop"]

RULES = ("stabilizing", "max-uncertainty", "auto")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two label vectors: (p_o - p_e) / (1 - p_e); 1.0 when they agree fully."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0:
        return 1.0
    po = float((a == b).mean())
    labels = np.union1d(a, b)
    pe = float(sum((a == c).mean() * (b == c).mean() for c in labels))
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1.0 - pe)


def _stabilized(rows: Sequence[dict], kappa: float, window: int) -> bool:
    ks = [r.get("kappa") for r in rows[-window:]]
    vals = [float(k) for k in ks if k is not None]
    return len(ks) == window and len(vals) == window and float(np.mean(vals)) >= kappa


def fired(rule: str, rows: Sequence[dict], kappa: float = 0.99, window: int = 3, max_uncertainty: float = 0.25) -> bool:
    """Whether ``rule`` says stop after the last of ``rows`` (the rounds so far, oldest first)."""
    if not rows:
        return False
    if rule == "stabilizing":
        return _stabilized(rows, kappa, window)
    if rule == "max-uncertainty":
        mu = rows[-1].get("max_uncertainty")
        return mu is not None and mu < max_uncertainty
    if rule == "auto":
        k = rows[-1].get("kappa_window_min")
        return k is not None and k >= kappa
    if rule == "none":
        return False
    raise ValueError(f"rule={rule!r}: expected one of {RULES}")


def first_stop(rule: str, rows: Sequence[dict], **kw: float) -> int | None:
    """Index of the first round after which ``rule`` fires, or None."""
    for i in range(len(rows)):
        if fired(rule, rows[: i + 1], **kw):  # type: ignore[arg-type]
            return i
    return None
