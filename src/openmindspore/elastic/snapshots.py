"""In-memory snapshots and disk checkpoints of an elastic run, and what a snapshot costs.

Owns the run's snapshot store (:mod:`~openmindspore.elastic.store`, ``--snapshot-store``: by default a
holder process outside the driver, into whose shared memory a worker writes the state after a step; the
last few are kept and outlive the worker that made them, and with ``holder`` the driver too), whether one
was requested before the step now running, and the disk-checkpoint writer (one background thread, the
time of the last checkpoint). Reads the active group (to ask a member for a snapshot) and the step times
(to measure a snapshot's cost); writes only into the run directory and the store.

``--snapshot-every auto`` budgets a snapshot to 5 % of a step (:meth:`ResolvedOptions.snapshot_period`);
its cost is measured (:func:`snapshot_cost_s`), starting from the workers' estimate (one copy and SHA-256).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable

from openmindspore.elastic.membership import Membership
from openmindspore.elastic.options import ResolvedOptions
from openmindspore.elastic.stats import StepStats, ab_on
from openmindspore.elastic.store import open_store
from openmindspore.engine import Engine
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.state import TrainState

__all__ = ["Snapshots", "snapshot_cost_s", "snapshot_due"]

log = logging.getLogger(__name__)

KEEP = 2  # snapshots held (the newest and the one before, in case the newest never arrives)


def snapshot_cost_s(
    step_times: list[float], after_snapshot: list[bool], window: int = 60, spread: int = 3
) -> float | None:
    """What a snapshot costs the training, measured over the recent ``window`` steps: the extra time of the
    ``spread`` steps after each snapshot request (or fewer, up to the next request; writing a large state
    outlasts a short step, so the step right after it does not see all of it) over the median of the
    steps further from one, summed per snapshot; the median over snapshots. Requests closer together than
    ``spread + 1`` steps narrow ``spread`` to leave steps to compare with (every 2nd step: the step right
    after each request against the others), so a short period can still be measured and corrected. None
    until there are 3 of each (e.g. every step snapshotted: the workers' start-up estimate stands)."""
    recent = list(zip(step_times[-window:], after_snapshot[-window:]))
    starts = [i for i, (_, snap) in enumerate(recent) if snap]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    if gaps and min(gaps) >= 2:
        spread = min(spread, min(gaps) - 1)
    since: list[int | None] = []  # per step: steps since the last request (0: the step right after it)
    last: int | None = None
    for i, (_, snap) in enumerate(recent):
        last = i if snap else last
        since.append(None if last is None else i - last)
    rest = [t for (t, _), k in zip(recent, since) if k is None or k >= spread]
    if len(starts) < 3 or len(rest) < 3:
        return None
    base = statistics.median(rest)
    extra = []
    for i in starts:
        steps = range(i, min(i + spread, len(recent)))
        extra.append(sum(recent[r][0] - base for r in steps if since[r] == r - i))
    return max(0.0, statistics.median(extra))


def snapshot_due(step: int, period: Callable[[], int], ab: int | None = None) -> bool:
    """Whether the state after 1-based ``step`` is snapshotted: every ``period()`` steps; with
    ``--snapshot-ab`` (``ab``: the block size) only when the next step lies in a block with snapshots."""
    if ab is not None and not ab_on(step + 1, ab):
        return False
    return step % period() == 0


class Snapshots:
    """Snapshots and checkpoints of one run (see the module docstring); ``checkpoint_every``: the training
    config's period, unless the options give one."""

    def __init__(
        self,
        engine: Engine,
        opts: ResolvedOptions,
        checkpoint_every: int,
        run_dir: RunDir,
        members: Membership,
        stats: StepStats,
    ) -> None:
        self.engine, self.opts, self.run_dir, self.members, self.stats = engine, opts, run_dir, members, stats
        self.checkpoint_every = opts.checkpoint_every or checkpoint_every
        self.store = open_store(opts.snapshot_store, engine, run_dir.path, KEEP)
        self._requested = False
        self._period = 1  # the last period used
        self._cost: float | None = None  # the last measured cost
        self._writer: threading.Thread | None = None
        self._last_checkpoint = time.time()
        self._owed: int | None = None  # a due checkpoint not written (its snapshot lost, e.g. with the holder)

    # ------------------------------------------------------------ snapshots
    def cost_s(self) -> float | None:
        """The measured cost of a snapshot (:func:`snapshot_cost_s` over enough recent steps to hold a few
        at the current period); once measured, the last measurement stands while a new one cannot be made."""
        cost = snapshot_cost_s(self.stats.step_times, self.stats.after_snapshot, window=max(60, 4 * self._period))
        if cost is not None:
            self._cost = cost
        return self._cost

    def period(self) -> int:
        """Steps between snapshots now (see :meth:`ResolvedOptions.snapshot_period`)."""
        cost = self.cost_s()
        copy_s = self.members.snapshot_copy_s if cost is None else cost
        self._period = self.opts.snapshot_period(copy_s, self.stats.recent_step_s(5), self.opts.rebuildable)
        return self._period

    def take(self, step: int, force: bool = False) -> None:
        """Have a member of the group put the state after ``step`` into the snapshot store, when the period
        says so (``force``: anyway, e.g. a checkpoint is due)."""
        if not force and not snapshot_due(step, self.period, self.opts.snapshot_ab):
            return
        repaired = self.store.check()  # e.g. the holder process died: a new one, with a warning
        if repaired:
            log.warning(repaired)
        group = self.members.group
        method, args = self.store.request(step)
        self.store.record(step, self.engine.call(group[step % len(group)], method, *args))
        self._requested = True
        if not self.opts.rebuildable:
            # MCCL: have this step's snapshot in the object store before the next step starts. Once a peer
            # dies, a survivor's main thread blocks in MindSpore waiting for the all-reduce and may hold the
            # GIL, so neither its export nor a snapshot it still owes would come back (a step was lost so)
            self.store.wait(step, timeout=60.0)

    def consume_requested(self) -> bool:
        """Whether a snapshot was requested since the last call (the step just run competed with it)."""
        requested, self._requested = self._requested, False
        return requested

    def newest(self, newer_than: int) -> tuple[int, TrainState] | None:
        """The newest snapshot after step ``newer_than`` that can be read (up to 10 s for each), or None."""
        return self.store.latest(newer_than, timeout=10)

    def forget_after(self, step: int) -> None:
        """Drop snapshots of steps after ``step`` (rolled back, or a run resumed from ``step``)."""
        self.store.forget_after(step)

    def close(self, completed: bool) -> None:
        """The run ended (``completed``: cleanly, its final checkpoint written): release the store."""
        self.join()
        self.store.close(completed)

    # ---------------------------------------------------------- checkpoints
    def checkpoint_due(self, step: int) -> bool:
        """Every ``checkpoint_every`` steps (or ``--checkpoint-secs``), and at every step while one is owed."""
        if self._owed is not None or step % self.checkpoint_every == 0:
            return True
        return (
            self.opts.checkpoint_secs is not None and time.time() - self._last_checkpoint >= self.opts.checkpoint_secs
        )

    def checkpoint(self, step: int, force: bool = False) -> None:
        """Write the snapshot of ``step`` to disk on a driver thread (``force``: now, waiting for it)."""
        if step not in self.store.steps():
            self._owe(step)
            return
        if self._writer is not None and self._writer.is_alive():
            if not force:
                return  # the previous checkpoint is still being written; skip rather than queue up
            self._writer.join()
        world, read = len(self.members.group), self.store.reader(step)  # kept even if the store drops it
        self._last_checkpoint = time.time()

        def write() -> None:
            state = read(300.0)
            if state is not None:
                self.run_dir.save(state, world_size=world)
                self._owed = None
            else:
                self._owe(step)

        self._writer = threading.Thread(target=write, daemon=True)
        self._writer.start()
        if force:
            self._writer.join()

    def _owe(self, step: int) -> None:
        """The checkpoint of ``step`` could not be written: the next steps' snapshots are taken and written
        until one is (not skipped until the next period: a holder lost with the driver meanwhile would
        leave nothing newer on disk)."""
        if self._owed is None:
            log.warning("checkpoint of step %d not written: its snapshot could not be read; writing a later one", step)
            self._owed = step

    def final_checkpoint(self, state: TrainState) -> None:
        """Write ``state`` now (a run that stops), after any checkpoint still being written."""
        self.join()
        self.run_dir.save(state, world_size=len(self.members.group) or 1)

    def join(self) -> None:
        if self._writer is not None:
            self._writer.join()
