"""Exactly-once sample accounting over the steps that a run actually completed.

Owns the ledger of this run's completed steps (step -> epoch and global sample ids); the driver's run
loop records into it and recovery rolls it back. Touches nothing else.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

__all__ = ["SampleLedger"]


class SampleLedger:
    """Records which sample ids each completed global step trained on; a rollback forgets the steps
    after the restored state. ``duplicates``/``missed`` are counted per epoch over completed epochs."""

    def __init__(self, num_samples: int, partial_epoch: int | None = None) -> None:
        self.num_samples = num_samples
        self.partial_epoch = partial_epoch  # an epoch this process joined midway (resumed runs)
        self.steps: dict[int, tuple[int, np.ndarray]] = {}

    def record(self, step: int, epoch: int, ids: np.ndarray) -> None:
        self.steps[step] = (epoch, np.asarray(ids, dtype=np.int64))

    def rollback(self, to_step: int) -> int:
        """Forget steps after ``to_step``; returns how many were forgotten (steps lost)."""
        lost = [s for s in self.steps if s > to_step]
        for s in lost:
            del self.steps[s]
        return len(lost)

    def counts(self) -> tuple[int, int, int]:
        """(samples seen, duplicate samples, missed samples in epochs that were finished)."""
        per_epoch: dict[int, list[np.ndarray]] = defaultdict(list)
        for epoch, ids in self.steps.values():
            per_epoch[epoch].append(ids)
        seen = dup = missed = 0
        for epoch, parts in per_epoch.items():
            ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
            c = np.bincount(ids, minlength=self.num_samples)
            seen += int(c.sum())
            dup += int(np.maximum(c - 1, 0).sum())
            finished = epoch < max(per_epoch) or int(c.sum()) >= self.num_samples
            if finished and epoch != self.partial_epoch:
                missed += int((c == 0).sum())
        return seen, dup, missed
