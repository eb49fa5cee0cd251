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

__all__ = ["StepStats", "ab_on", "ab_overhead"]


def ab_on(step: int, block: int) -> bool:
    """``--snapshot-ab``: whether 1-based global ``step`` lies in a block with snapshots (blocks of ``block``
    steps alternate, the first without)."""
    return ((step - 1) // block) % 2 == 1


def ab_overhead(
    step_times: list[float], first_step: int, block: int, warmup_blocks: int = 2, settle: int = 2
) -> dict[str, Any] | None:
    """The snapshot overhead measured within one run of ``--snapshot-ab``: each complete block with
    snapshots against the mean of its neighbours without (so a slow drift of the machine cancels), as
    mean step time / neighbours' mean - 1; the median over blocks is robust to a burst of load in one.
    ``step_times[i]`` is global step ``first_step + 1 + i`` (a run without recoveries); the first
    ``warmup_blocks`` blocks are skipped and so are the first ``settle`` steps of a block without (a
    snapshot taken at the end of the previous block may still be being written then). None when no block
    with snapshots has a neighbour. ``off_early_vs_late`` checks the settling: the early steps of the
    blocks without against their late ones."""
    settle = min(settle, block - 1)
    blocks: dict[int, list[float]] = {}
    for i, t in enumerate(step_times):
        step = first_step + 1 + i
        b = (step - 1) // block
        if b >= warmup_blocks and (ab_on(step, block) or (step - 1) % block >= settle):
            blocks.setdefault(b, []).append(t)
    full = {b: statistics.fmean(ts) for b, ts in blocks.items() if len(ts) == (block if b % 2 else block - settle)}
    on = {b: m for b, m in full.items() if b % 2 == 1}
    around = {b: [full[x] for x in (b - 1, b + 1) if x in full] for b in on}
    pairs = {b: (m, statistics.fmean(around[b])) for b, m in on.items() if around[b]}
    if not pairs:
        return None
    ratios = [m / off - 1 for m, off in pairs.values()]
    offs = [blocks[b] for b in full if b % 2 == 0]
    half = (block - settle) // 2
    return {
        "block": block,
        "blocks": len(ratios),
        "overhead_median": round(statistics.median(ratios), 4),
        "overhead_mean": round(statistics.fmean(ratios), 4),
        "overhead_stderr": round(statistics.stdev(ratios) / len(ratios) ** 0.5, 4) if len(ratios) > 1 else None,
        "step_s_on": round(statistics.fmean(m for m, _ in pairs.values()), 4),
        "step_s_off": round(statistics.fmean(off for _, off in pairs.values()), 4),
        "ratios": [round(r, 4) for r in ratios],
        # snapshots still being written after their block would slow the early steps of the next one: the
        # first half of the blocks without against their second half (~0 when they had settled)
        "off_early_vs_late": round(
            statistics.fmean(t for ts in offs for t in ts[:half])
            / statistics.fmean(t for ts in offs for t in ts[half:])
            - 1,
            4,
        )
        if half
        else None,
    }


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
