"""The audit stream: labels drawn uniformly from the *whole* pool, so abstention can be certified.

Actively chosen labels are the pool's hardest points and say little about the confident region where
a model predicts; a certificate computed on them is valid only for points like them. The audit walks a
fixed random order of the whole pool (``default_rng([seed, AUDIT_KEY])``): each step takes the next
pool id, for free when it is already labelled, as a query otherwise. The audited prefix is therefore a
uniform sample of the pool, exchangeable with the test data, and the certificate uses it alone.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AUDIT_KEY", "audit_order", "audit_share", "extend_audit"]

AUDIT_KEY = 7_000_011


def audit_order(seed: int, pool: int) -> np.ndarray:
    """The seed's fixed order of the pool for the audit stream."""
    return np.random.default_rng([int(seed), AUDIT_KEY]).permutation(pool)


def audit_share(audit: float, batch: int) -> int:
    """How many of a round's ``batch`` queries go to the audit stream."""
    return min(int(batch), math.ceil(float(audit) * int(batch))) if audit > 0 else 0


def extend_audit(order: np.ndarray, pos: int, taken: set[int], queries: int) -> tuple[list[int], int]:
    """Walk ``order`` from ``pos`` until ``queries`` ids not in ``taken`` are found: (those ids, the new
    position). Ids already in ``taken`` are passed over into the audited prefix at no cost."""
    new: list[int] = []
    while len(new) < queries and pos < len(order):
        i = int(order[pos])
        pos += 1
        if i not in taken:
            new.append(i)
    return new, pos
