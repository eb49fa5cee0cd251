"""The elastic driver: the run loop of one elastic data-parallel job.

Owns the loop's position (the step, the last loss, the sample ledger, the logging window) and the parts
it composes, each owning its own state: the processes and the active group
(:mod:`~openmindspore.elastic.membership`), running a lock-step step and classifying failures
(:mod:`~openmindspore.elastic.steps`), snapshots and checkpoints (:mod:`~openmindspore.elastic.snapshots`),
recovery and rescaling (:mod:`~openmindspore.elastic.recovery`), the per-step measurements
(:mod:`~openmindspore.elastic.stats`) and fault injection (:mod:`~openmindspore.elastic.faults`). Writes
the run directory's metrics and summary.

Failure semantics (see docs/distributed.md):

* **crash** — a worker process dies: the engine reports it at once. With ``--comm shm`` (rebuildable)
  the survivors' all-reduce fails within milliseconds, they roll the step back and stay alive; the group
  is rebuilt in their processes with warm replacements for the dead (TorchFT-style). With ``--comm mccl``
  survivors are blocked in the all-reduce; their state after the previous step is exported from another
  thread of their process, then the whole group is retired (a broken MindSpore group cannot be
  re-initialised).
* **hang** — a step outlives its deadline (``min(--hang-timeout, max(1 s, 5 x median step time))``);
  workers that do not answer a heartbeat within ``max(2 s, deadline / 2)`` are the hung ones (if all
  answer, the step is merely slow and gets another deadline, up to 3 x ``--hang-timeout``).
* **preempt** — SIGTERM: the worker finishes the step, reports it, and leaves; nothing is rolled back.

A new group is formed from warm pool processes: the same world size when enough are ready, otherwise
the survivors' count (``>= --min-workers``); when enough processes are ready again the group scales back
up at a step boundary.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np

from openmindspore.elastic.accounting import SampleLedger
from openmindspore.elastic.faults import FaultPlan
from openmindspore.elastic.membership import Membership
from openmindspore.elastic.messages import SummaryFields
from openmindspore.elastic.options import ElasticOptions, ResolvedOptions
from openmindspore.elastic.recovery import Recovery
from openmindspore.elastic.snapshots import Snapshots
from openmindspore.elastic.stats import StepStats, ab_overhead
from openmindspore.elastic.steps import GroupFailure, StepRunner
from openmindspore.engine import Engine, get_engine
from openmindspore.errors import OMSError
from openmindspore.train.building import describe_model
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.config import TrainConfig
from openmindspore.train.observe import RunObserver
from openmindspore.train.progress import step_progress
from openmindspore.train.state import TrainState
from openmindspore.train.trainer import train_data

__all__ = ["ElasticTrainer", "GroupFailure"]

log = logging.getLogger(__name__)


class ElasticTrainer:
    """Runs one elastic data-parallel job; ``run()`` returns the summary dict. ``opts`` are resolved for the
    config's global batch here unless they already are."""

    def __init__(
        self,
        cfg: TrainConfig,
        opts: ElasticOptions,
        run: RunDir,
        quiet: bool = True,
        engine: Engine | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        o = opts if isinstance(opts, ResolvedOptions) else opts.resolve(cfg.batch_size)
        self.cfg, self.opts, self.run_dir, self.quiet = cfg, o, run, quiet
        self.engine = engine or get_engine(o.engine)
        self.obs = observer or RunObserver.open(cfg, run.path, resumed=True)  # trackers, eval, events
        self.num_train = len(train_data(cfg).x_train)  # the training split as the workers see it (train_subset)
        self.total_steps = cfg.total_steps(self.num_train)
        self.stats = StepStats()
        self.faults = FaultPlan(o.faults, run.path / "faults_fired.log")
        self.members = Membership(self.engine, o, cfg.model_dump(mode="json"), cfg.batch_size, self.faults)
        self.steps = StepRunner(self.engine, o.hang_timeout, self.stats)
        self.snapshots = Snapshots(self.engine, o, cfg.checkpoint_every, run, self.members, self.stats)
        self.recovery = Recovery(
            self.engine,
            o,
            self.members,
            self.steps,
            self.snapshots,
            self.num_train,
            cfg.batch_size,
            self._say,
            str(run.path),
        )

    def _say(self, msg: str) -> None:
        log.info(msg)
        if not self.quiet:
            print(f"[elastic] {msg}", file=sys.stderr, flush=True)

    def run(self, state: TrainState | None = None, max_steps: int | None = None) -> dict[str, Any]:
        """Train from ``state`` (None: from scratch) up to ``max_steps`` (None: the config's total)."""
        o = self.opts
        stop_at = min(self.total_steps, max_steps or self.total_steps)
        try:
            self.engine.start(o.address, num_cpus=o.workers + o.spares + 1)
        except BaseException:
            self.snapshots.close(False)
            raise
        completed = False
        try:
            summary = self._run(state, stop_at)
            completed = True
            return summary
        finally:
            self.obs.close("failed")  # no-op once the summary is written
            self.snapshots.close(completed)  # the snapshot store: released (kept on disk if not completed)
            self.members.shutdown()
            self.engine.shutdown()

    def _form_first_group(self, state: TrainState | None, step: int) -> None:
        """Up to 3 tries when a member dies while the group forms; a group whose members are all alive but
        cannot connect (their nodes cannot reach each other's ports) fails at once, after the members' connect
        deadline (3 x --hang-timeout): one line naming the address and what to check."""
        o = self.opts
        t_start = time.time()
        for attempt in range(3):
            try:
                self.members.form_group(o.workers, state, step)
                break
            except GroupFailure as failure:
                self.members.retire_group()
                if attempt == 2 or not failure.retryable:
                    raise OMSError(
                        f"could not form a group of {o.workers} workers in {time.time() - t_start:.0f} s: "
                        f"{failure.detail}"
                    ) from None
                self._say(f"group formation failed ({failure.detail}); retrying")
        self._say(
            f"group of {o.workers} worker(s) formed in {time.time() - t_start:.1f} s (threads per worker: {o.threads})"
        )

    def _run(self, state: TrainState | None, stop_at: int) -> dict[str, Any]:
        o, members, snapshots, recovery = self.opts, self.members, self.snapshots, self.recovery
        self.obs.start()
        members.start()
        step = state.step if state is not None else 0
        snapshots.forget_after(step)  # a reused store (resume) may hold snapshots past the state resumed
        ledger = SampleLedger(
            self.num_train, partial_epoch=state.sampler.epoch if state and state.sampler.offset else None
        )
        self._form_first_group(state, step)
        last_loss = float(state.extra.get("final_loss", float("nan"))) if state else float("nan")
        window_t, window_n = time.perf_counter(), 0
        with step_progress(stop_at, step, title=f"train x{o.workers}", disable=self.quiet) as bar:
            while step < stop_at:
                t0 = time.time()
                try:
                    results = self.steps.run(step, members.group)
                except GroupFailure as failure:
                    step = recovery.recover(failure, step, ledger)
                    continue
                step += 1
                compiled = self.stats.record(time.time() - t0, results, snapshots.consume_requested())
                last_loss = float(sum(r.loss for r in results))
                ledger.record(step, results[0].epoch, np.concatenate([r.samples for r in results]))
                recovery.step_done(step, compiled)
                self.obs.sync_events(recovery.recoveries, recovery.rescales)
                if self.obs.eval_due(step) and self._evaluate(step):
                    stop_at = step  # early stopping: a final checkpoint at this step
                # a disk checkpoint is written from a snapshot: take one when it is due, whatever --snapshot-every
                ckpt_due = step == stop_at or snapshots.checkpoint_due(step)
                snapshots.take(step, force=ckpt_due)
                members.refill_if_deferred()
                window_n += 1
                if step % self.cfg.log_every == 0 or step == stop_at:
                    now = time.perf_counter()
                    sps = window_n * self.cfg.batch_size / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    self._log_metrics(bar, step, last_loss, sps)
                preempted = [r.rank for r in results if r.preempted]
                if preempted:
                    step = recovery.recover(GroupFailure("preempt", preempted, step, t0, "SIGTERM"), step, ledger)
                    continue
                if ckpt_due:
                    snapshots.checkpoint(step, force=step == stop_at)
                if step < stop_at:
                    recovery.maybe_scale_up(step)
                    members.prepare_standby()
        return self._summary(step, last_loss, ledger)

    def _log_metrics(self, bar: Any, step: int, loss: float, sps: float) -> None:
        world = len(self.members.group)
        bar.update(step, loss, sps, info=f"world {world}")
        row = {"step": step, "loss": loss, "samples_per_s": sps, "world_size": world, "time": time.time()}
        self.obs.metrics(self.run_dir, row)

    def _evaluate(self, step: int) -> bool:
        """Validation metrics after ``step`` from rank 0 (every rank holds the same parameters), its state kept
        when among the best; True when early stopping is due. A failed call (a dying worker) skips it."""
        rank0 = self.members.group[0]
        try:
            fields: SummaryFields = self.engine.get(self.engine.call(rank0, "summary_fields"), timeout=300)
        except Exception as e:  # noqa: BLE001 - the failure itself is detected by the next step
            log.warning("validation at step %d skipped: %s", step, e)
            return False
        state = lambda: self.engine.get(self.engine.call(rank0, "snapshot", step), timeout=300)  # noqa: E731
        return self.obs.evaluated(step, fields.val, state, len(self.members.group))

    def _snapshot_ab(self, step: int) -> dict[str, Any] | None:
        """``--snapshot-ab``: the overhead measured within this run (None without it, or after a recovery,
        which redoes steps)."""
        times, block = self.stats.step_times, self.opts.snapshot_ab
        if block is None or self.recovery.recoveries or len(times) > step:
            return None
        return ab_overhead(times, step - len(times), block)

    def _summary(self, step: int, loss: float, ledger: SampleLedger) -> dict[str, Any]:
        fields: SummaryFields = self.engine.get(self.engine.call(self.members.group[0], "summary_fields"), timeout=300)
        seen, dup, missed = ledger.counts()
        timing = self.stats.summary()
        summary = {
            "status": "completed" if step >= self.total_steps else "stopped",
            "steps": step,
            "total_steps": self.total_steps,
            "final_loss": loss,
            "eval": fields.eval,
            "val": fields.val,
            "params_sha256": fields.params_sha256,
            "samples_seen": fields.samples_seen,
            "samples_seen_this_run": seen,
            "duplicate_samples": dup,
            "missed_samples": missed,
            "epoch": fields.epoch,
            "step_time_s": timing["step_time_s"],
            "snapshot_overhead": timing["snapshot_overhead"],
            "snapshot_every": self.snapshots.period(),
            "snapshot_copy_s": self.members.snapshot_copy_s,
            "snapshot_cost_s": self.snapshots.cost_s(),
            "snapshot_store": self.snapshots.store.describe(),
            "snapshot_ab": self._snapshot_ab(step),
            "comm_s": {"backend": self.opts.comm, "median": timing["comm_median_s"]},
            "phases_s": timing["phases_s"],
            "world_size": len(self.members.group),
            "workers": self.opts.workers,
            "recoveries": self.recovery.recoveries,
            "worker_cores": self.members.worker_cores,  # per rank of the last group: pinned cores (None: not pinned)
            "late_compiles": timing["late_compiles"],
            "rescales": self.recovery.rescales,
            "dataset": self.cfg.dataset,
            "model": describe_model(self.cfg.model),
            "elastic": self.opts.to_dict(),
            "engine": self.engine.name,
        }
        self.obs.sync_events(self.recovery.recoveries, self.recovery.rescales)
        return self.obs.finish(self.run_dir, summary)
