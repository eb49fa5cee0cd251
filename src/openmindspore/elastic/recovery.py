"""From a detected failure to a new group, and back up to full strength: recovery and rescaling.

Owns the run's record of recoveries and rescales (what the summary reports), and the recovery whose
first step has not completed yet. Reads the survivors' and the snapshots' state, rolls the sample ledger
back to the state it resumes from, and forms the new group through the membership; it never runs a step.

* **crash / hang** — with a rebuildable backend (shm, tcp) the survivors abort their collective, stay alive
  and keep their state; only the failed processes are replaced (from the warm pool) and the group is
  rebuilt in the survivors' processes. Otherwise (MCCL) the whole group is retired; its survivors'
  state after the previous step is exported from another thread of their process first.
* **preempt** — the worker finished the step and reported it: nothing is rolled back.

The state resumed from is the newest one: exported by a live member, else the newest snapshot. The new
group has the same world size when enough processes are ready (after a bounded wait for replacements),
otherwise the survivors' count (``>= --min-workers``); it grows back at a step boundary once enough
processes are up again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from openmindspore.data import ResumableSampler
from openmindspore.elastic.accounting import SampleLedger
from openmindspore.elastic.membership import Formed, Membership
from openmindspore.elastic.messages import ExportedState
from openmindspore.elastic.options import ResolvedOptions
from openmindspore.elastic.snapshots import Snapshots
from openmindspore.elastic.steps import GroupFailure, StepRunner
from openmindspore.engine import ActorRef, Engine
from openmindspore.errors import OMSError
from openmindspore.train.state import TrainState

__all__ = ["Recovery"]

EXPORT_WAIT_S = 30.0  # longest wait for a settled survivor's state (rebuildable backends; returns when all answer)


def _nothing_left(step: int) -> OMSError:
    return OMSError(f"no state to recover from after step {step}: every process and snapshot is lost")


class Recovery:
    """Recovers one run's group (see the module docstring); ``num_train`` and ``global_batch`` place a
    step's samples, ``say`` reports progress, ``resume_hint`` is the run directory named in a fatal error."""

    def __init__(
        self,
        engine: Engine,
        opts: ResolvedOptions,
        members: Membership,
        steps: StepRunner,
        snapshots: Snapshots,
        num_train: int,
        global_batch: int,
        say: Callable[[str], None],
        resume_hint: str,
    ) -> None:
        self.engine, self.opts, self.members, self.steps, self.snapshots = engine, opts, members, steps, snapshots
        self.num_train, self.global_batch, self.say, self.resume_hint = num_train, global_batch, say, resume_hint
        self.recoveries: list[dict[str, Any]] = []
        self.rescales: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None  # the last recovery, until its first step completes

    def recover(self, failure: GroupFailure, last_done: int, ledger: SampleLedger) -> int:
        """Replace the failed members and resume from the best state; returns its step."""
        if self._pending is not None:  # a failure during recovery: that one never completed
            rec = self._pending
            rec.pop("t_fail")
            rec.pop("t_formed")
            self.recoveries.append({**rec, "recover_s": None, "interrupted": True})
            self._pending = None
        o, members = self.opts, self.members
        world_before, nodes_before = len(members.group), members.nodes
        alive = [r for r in range(world_before) if r not in failure.ranks]
        self.say(
            f"{failure.kind}: rank(s) {failure.ranks} during step {failure.step} "
            f"(detected after {failure.t_detect - failure.t_fail:.2f} s)"
        )
        keep_mode = o.keeps_survivors
        t_begin = time.time()
        if keep_mode:
            self.steps.settle(members.group, alive)
        t_settled = time.time()
        state_step, best, also_dead, steps = self._best_state(alive, last_done)
        t_state = time.time()
        failure.ranks = sorted(set(failure.ranks) | set(also_dead))
        keep: list[ActorRef] = []
        keep_at: frozenset[int] = frozenset()
        if keep_mode:  # survivors stay (same processes); only the failed ones go
            survivors = [r for r in alive if r in steps and r not in failure.ranks]
            keep_at = frozenset(i for i, r in enumerate(survivors) if steps[r] == state_step)
            keep = members.keep_only(survivors)
        else:
            members.retire_group()
        steps_lost = ledger.rollback(state_step)
        if state_step > last_done:  # the failed step completed on the survivors: account for it
            self._record_reconstructed(ledger, best, state_step)
        deadline = time.time() + 120
        retries: list[str] = []  # failures while forming the new group
        pool = members.pool
        need = o.workers - len(keep)
        covered = keep_mode and pool.warm() >= need  # warm replacements are enough
        members.refill(defer=covered)
        if not members.standby:  # replacements are starting: wait a bounded time rather than shrink
            members.prepare_standby()
            if not members.standby and need > 0 and pool.size >= need > pool.warm():
                self.say(f"waiting up to {o.rejoin_wait:.0f} s for replacement processes")
                until = time.time() + o.rejoin_wait
                while time.time() < until and pool.warm(timeout=0.5) < need:
                    pass
        while True:
            covered = covered and bool(keep) and pool.warm() >= o.workers - len(keep)
            members.refill(defer=covered)
            ready = pool.warm(timeout=0.1) + members.standby_size() + len(keep)
            if ready < o.min_workers:
                if not pool.size or time.time() > deadline:
                    self.snapshots.final_checkpoint(best)
                    raise OMSError(
                        f"{failure.kind} of rank(s) {failure.ranks} at step {failure.step} left {ready} worker "
                        f"process(es) and no restarts (--max-restarts={o.max_restarts}), below "
                        f"--min-workers={o.min_workers}; final checkpoint at step {state_step} in "
                        f"{self.resume_hint}; resume with `oms train --resume {self.resume_hint}`"
                    )
                pool.warm(timeout=1.0)  # wait for cold-started replacements
                continue
            try:
                formed = members.form_group(min(o.workers, ready), best, state_step, keep=keep, keep_at_state=keep_at)
                size = len(members.group)
                t_formed = time.time()
                break
            except GroupFailure as again:  # a failure during recovery: try again, with the survivors still alive
                self.say(f"failure during recovery ({again.detail}); retrying")
                retries.append(again.detail[:300])
                if time.time() > deadline:
                    raise OMSError(
                        f"{failure.kind} of rank(s) {failure.ranks} at step {failure.step}: no new group formed in "
                        f"120 s ({len(retries)} tries; last: {again.detail[:300]}); resume from the newest "
                        f"checkpoint with `oms train --resume {self.resume_hint}`"
                    ) from again
                if keep:  # e.g. a replacement on a node that just died (not known dead yet): only it goes
                    at_state = {id(keep[i]) for i in keep_at}
                    before = len(keep)
                    keep = members.retain(keep)
                    keep_at = frozenset(i for i, a in enumerate(keep) if id(a) in at_state)
                    if len(keep) < before or len(retries) > 1:
                        # a survivor died too (the state it held, its ZeRO shard, went with it), or the survivors'
                        # state did not load twice (e.g. a survivor that joined in the last recovery holds no
                        # shard yet): a new group of fresh processes starts from the newest snapshot
                        state_step, best = self._newest_snapshot(last_done)
                        steps_lost += ledger.rollback(state_step)
                        members.retire_group()
                        keep, keep_at = [], frozenset()
                else:
                    members.retire_group()
        self._pending = self._record(failure, world_before, size, steps_lost, state_step, formed)
        self._pending["nodes_before"], self._pending["nodes_after"] = nodes_before, members.nodes
        self._pending["formation_retries"] = retries
        self._pending["phases_s"] = {
            "detect_to_recover": round(t_begin - failure.t_detect, 3),
            "abort": round(t_settled - t_begin, 3),
            "state": round(t_state - t_settled, 3),
            "form_group": round(t_formed - t_state, 3),
        }
        self._pending["t_formed"] = t_formed
        self.snapshots.forget_after(state_step)
        return state_step

    def _record(
        self, failure: GroupFailure, before: int, after: int, lost: int, state_step: int, formed: Formed
    ) -> dict[str, Any]:
        return {
            "step": failure.step,
            "kind": failure.kind,
            "failed_ranks": failure.ranks,
            "detect_s": round(failure.t_detect - failure.t_fail, 3),
            "t_fail": failure.t_fail,
            "world_before": before,
            "world_after": after,
            "steps_lost": lost,
            "resumed_from_step": state_step,
            "comm_init_s": round(formed.comm_init_s, 3),
            "standby_group": formed.standby,
            "survivors_kept": formed.kept,
            "comm": self.opts.comm,
        }

    def step_done(self, step: int, compiled: bool) -> None:
        """A step completed: if it was the first after a recovery, that recovery is complete."""
        if self._pending is None:
            return
        rec, self._pending = self._pending, None
        rec["first_step_compiled"] = compiled
        rec["recover_s"] = round(time.time() - rec.pop("t_fail"), 3)
        rec["phases_s"]["first_step"] = round(time.time() - rec.pop("t_formed"), 3)
        self.recoveries.append(rec)
        self.say(
            f"recovered: world {rec['world_before']} -> {rec['world_after']}, "
            f"{rec['recover_s']:.2f} s from failure to step {step}, {rec['steps_lost']} step(s) lost"
        )

    def _best_state(self, alive: list[int], fallback_step: int) -> tuple[int, TrainState, list[int], dict[int, int]]:
        """The newest state: exported by a live member (another thread of its process; all asked at once),
        else the newest snapshot in the engine's object store. Also returns the members found dead meanwhile
        and each answering live member's step: only those can stay in the group. Budget: 5 s with MCCL (a
        survivor blocked in its all-reduce may never answer), :data:`EXPORT_WAIT_S` with a rebuildable
        backend, whose survivors are out of their step already (settled) but may be slow on a loaded node."""
        group = self.members.group
        futs = {r: self.engine.call(group[r], "export_state") for r in alive}
        if futs:
            budget = EXPORT_WAIT_S if self.opts.keeps_survivors else 5.0
            self.engine.wait(list(futs.values()), timeout=budget, num=len(futs))
        best: ExportedState | None = None
        steps: dict[int, int] = {}
        dead = []
        for r, f in futs.items():
            out = self.engine.outcome(f, timeout=0)
            if out.ok:
                exported: ExportedState = out.value
                steps[r] = exported.step
                if best is None or exported.step > best.step:
                    best = exported
            elif out.status == "dead":
                dead.append(r)
        snap = self.snapshots.newest(newer_than=-1 if best is None else best.step)
        if snap is not None:
            return snap[0], snap[1], dead, steps
        if best is None:
            raise _nothing_left(fallback_step)
        return best.step, best.state, dead, steps

    def _newest_snapshot(self, fallback_step: int) -> tuple[int, TrainState]:
        snap = self.snapshots.newest(newer_than=-1)
        if snap is None:
            raise _nothing_left(fallback_step)
        return snap

    def _record_reconstructed(self, ledger: SampleLedger, state: TrainState, step: int) -> None:
        """Account for a step that completed on the survivors but whose results never reached the driver:
        its global batch is the one that ends at the state's sampler position."""
        s = state.sampler
        epoch, end = (s.epoch, s.offset) if s.offset else (s.epoch - 1, self.num_train)
        start = (end - 1) // self.global_batch * self.global_batch
        order = ResumableSampler(self.num_train, self.global_batch, s.seed).permutation(epoch)
        ledger.record(step, epoch, order[start:end])

    def maybe_scale_up(self, step: int) -> None:
        """At a step boundary: grow the group back to ``--workers`` once enough processes are ready."""
        members = self.members
        if len(members.group) >= self.opts.workers:
            return
        members.prepare_standby()
        if not members.ready_to_grow():
            return
        t0 = time.time()
        before = len(members.group)
        state_step, best, _, steps = self._best_state(list(range(before)), step)
        if self.opts.keeps_survivors:  # the live group stays and grows in-process
            at_state = frozenset(r for r, s in steps.items() if s == state_step)
            formed = members.form_group(
                self.opts.workers, best, state_step, keep=list(members.group), keep_at_state=at_state
            )
        else:
            members.retire_group()
            formed = members.form_group(self.opts.workers, best, state_step)
        self.rescales.append(
            {
                "step": step,
                "world_before": before,
                "world_after": self.opts.workers,
                "pause_s": round(time.time() - t0, 3),
                "comm_init_s": round(formed.comm_init_s, 3),
            }
        )
        self.say(
            f"scaled up {before} -> {self.opts.workers} workers at step {step} "
            f"({time.time() - t0:.2f} s pause, no steps lost)"
        )
