"""Per-step measurements of an elastic run, as the driver sees them.

Owns the time series of completed steps: wall time per global step, whether a snapshot was being taken
during it, and the slowest rank's stash, exchange, compute and update times, plus the steps that compiled.
Written only by the run loop (:meth:`StepStats.record`); read by the step deadline
(:mod:`~openmindspore.elastic.steps`), the snapshot period (:mod:`~openmindspore.elastic.snapshots`)
and the summary.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from openmindspore.elastic.messages import StepResult

__all__ = ["StepStats"]


class StepStats:
    """Measurements of the steps completed so far (see the module docstring)."""

    def __init__(self) -> None:
        self.step_times: list[float] = []  # s, per global step, as the driver waited for it
        self.after_snapshot: list[bool] = []  # per step: a snapshot was requested just before it
        self.stash_times: list[float] = []
        self.comm_times: list[float] = []  # per step: the slowest rank's gradient exchange (incl. waiting), s
        self.phase_times: list[dict[str, float]] = []  # per step: compute / update / driver overhead, s
        self.late_compiles = 0  # steps in which some worker compiled the step for a new shard size

    def record(self, dt: float, results: list[StepResult], after_snapshot: bool) -> bool:
        """Record a step of ``dt`` seconds; returns whether some worker compiled during it."""
        self.step_times.append(dt)
        self.after_snapshot.append(after_snapshot)
        self.stash_times.append(max(r.stash_s for r in results))
        self.comm_times.append(max(r.comm_s for r in results))
        compiled = any(r.compiled for r in results)
        self.late_compiles += compiled
        self.phase_times.append(
            {
                "compute": max(r.compute_s for r in results),
                "update": max(r.update_s for r in results),
                "driver": dt - max(r.worker_s for r in results),
            }
        )
        return compiled

    def recent_step_s(self, min_steps: int) -> float | None:
        """Median of the last 20 step times, once at least ``min_steps`` (past the first, compiling ones)."""
        return statistics.median(self.step_times[-20:]) if len(self.step_times) >= min_steps else None

    def summary(self) -> dict[str, Any]:
        """The summary's timing fields (None before any step)."""
        times = np.asarray(self.step_times)
        med = float(np.median(times)) if len(times) else None
        return {
            "step_time_s": {
                "median": med,
                "mean": float(times.mean()) if len(times) else None,
                "p90": float(np.percentile(times, 90)) if len(times) else None,
            },
            "snapshot_overhead": (float(np.median(self.stash_times)) / med) if med else None,
            "comm_median_s": float(np.median(self.comm_times)) if self.comm_times else None,
            # medians over steps of the slowest rank's forward+backward, optimizer update, and the step time
            # not spent inside any worker's step call (engine round trip, driver bookkeeping)
            "phases_s": {
                k: float(np.median([p[k] for p in self.phase_times])) if self.phase_times else None
                for k in ("compute", "update", "driver")
            },
            "late_compiles": self.late_compiles,
        }
