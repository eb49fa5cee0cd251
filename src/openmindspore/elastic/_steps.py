"""Running one lock-step global step on the group and classifying what went wrong (the driver's half of
failure detection); the survivors' state for a recovery. Mixed into
:class:`openmindspore.elastic.driver.ElasticTrainer`."""

from __future__ import annotations

import statistics
import time
from typing import Any

from openmindspore.elastic.options import ElasticOptions
from openmindspore.engine import ActorRef, Engine
from openmindspore.errors import OMSError

__all__ = ["GroupFailure", "StepMixin"]


class GroupFailure(Exception):
    """``kind`` (crash | hang | preempt) of ``ranks`` during 1-based global ``step``; ``t_fail`` is when that
    step started (epoch seconds), ``t_detect`` when the failure was recognised."""

    def __init__(self, kind: str, ranks: list[int], step: int, t_fail: float, detail: str = "") -> None:
        super().__init__(f"{kind} of rank(s) {ranks} at step {step}: {detail}")
        self.kind, self.ranks, self.step, self.t_fail, self.detail = kind, ranks, step, t_fail, detail
        self.t_detect = time.time()


class StepMixin:
    """Step execution and failure classification over ``self.group`` (see the driver's docstring)."""

    engine: Engine
    opts: ElasticOptions
    group: list[ActorRef]
    step_times: list[float]
    snapshots: dict[int, Any]
    _inflight: dict[int, Any]

    def _recent_step_s(self, min_steps: int) -> float | None:
        """Median of the last 20 step times, once at least ``min_steps`` (past the first, compiling ones)."""
        return statistics.median(self.step_times[-20:]) if len(self.step_times) >= min_steps else None

    def _deadline(self) -> float:
        recent = self._recent_step_s(3)
        if recent is None:
            return self.opts.hang_timeout
        return min(self.opts.hang_timeout, max(1.0, 5 * recent))

    def _run_step(self, step: int) -> list[dict[str, Any]]:
        t0 = time.time()
        futs = [self.engine.call(a, "step", step) for a in self.group]
        self._inflight = dict(enumerate(futs))
        rank_of = {id(f): r for r, f in enumerate(futs)}
        results: dict[int, dict[str, Any]] = {}
        comm_errors: dict[int, dict[str, Any]] = {}
        pending = list(futs)
        deadline = t0 + self._deadline()
        all_silent_before = False
        while pending:
            ready, pending = self.engine.wait(pending, timeout=max(0.0, deadline - time.time()))
            for f in ready:
                out = self.engine.outcome(f, timeout=0)
                r = rank_of[id(f)]
                if out.ok and "comm_error" in out.value:
                    comm_errors[r] = out.value  # alive, its collective failed: someone else is the cause
                elif out.ok:
                    results[r] = out.value
                else:
                    dead = [
                        rank_of[id(g)] for g in pending + ready if self.engine.outcome(g, timeout=0).status == "dead"
                    ]
                    raise GroupFailure("crash", sorted(set(dead) | {r}), step + 1, t0, out.error)
            if comm_errors:
                raise self._comm_failure(step, t0, comm_errors, [rank_of[id(f)] for f in pending])
            if pending and time.time() >= deadline:
                hung = self._unresponsive([rank_of[id(f)] for f in pending], timeout=max(2.0, 0.5 * self._deadline()))
                if len(hung) == len(self.group) > 1 and not all_silent_before:
                    # every rank silent at once is far more often an overloaded node than a group-wide
                    # hang: confirm with another round at the next deadline (still bounded by the cap)
                    all_silent_before, hung = True, []
                if hung or time.time() - t0 >= 3 * self.opts.hang_timeout:
                    # a process that died is a crash even when the deadline came first (under load the
                    # engine may report the death after the 1 s minimum deadline)
                    kind = (
                        "crash"
                        if hung and all(self.engine.outcome(futs[r], timeout=0).status == "dead" for r in hung)
                        else "hang"
                    )
                    raise GroupFailure(
                        kind,
                        hung or sorted(rank_of[id(f)] for f in pending),
                        step + 1,
                        t0,
                        f"step {step + 1} exceeded its {self._deadline():.1f} s deadline",
                    )
                deadline = time.time() + self._deadline()
        self._inflight = {}
        return [results[r] for r in range(len(self.group))]

    def _comm_failure(
        self, step: int, t0: float, errors: dict[int, dict[str, Any]], pending: list[int]
    ) -> GroupFailure:
        """Classify a failed collective (rebuildable backends): the ranks that died (the engine reports
        them within ~0.1 s; waited for up to 2 s) or, if none did, the ranks the survivors named that do not
        answer a heartbeat (hung)."""
        futs = {r: self._inflight[r] for r in pending}
        until = time.time() + 2.0
        dead: list[int] = []
        while futs and time.time() < until:
            self.engine.wait(list(futs.values()), timeout=0.05, num=len(futs))
            for r, f in list(futs.items()):
                out = self.engine.outcome(f, timeout=0)
                if out.status in ("dead", "error"):
                    dead.append(r)
                if out.status != "pending":
                    del futs[r]
            if dead:
                break
        detail = next(iter(errors.values()))["comm_error"]
        if dead:
            return GroupFailure("crash", sorted(dead), step + 1, t0, detail)
        named = sorted({r for e in errors.values() for r in e["lost"]} | set(futs))
        hung = self._unresponsive(named, timeout=2.0) if named else []
        return GroupFailure("hang", hung or named or sorted(futs), step + 1, t0, detail)

    def _unresponsive(self, ranks: list[int], timeout: float) -> list[int]:
        """Ranks whose process does not answer a heartbeat within ``timeout`` (a thread of a live worker
        answers even while its main thread waits in a collective)."""
        pings = {r: self.engine.call(self.group[r], "ping") for r in ranks}
        self.engine.wait(list(pings.values()), timeout=timeout, num=len(pings))
        return [r for r, f in pings.items() if not self.engine.outcome(f, timeout=0).ok]

    def _best_state(self, alive: list[int], fallback_step: int) -> tuple[int, Any, list[int], dict[int, int]]:
        """The newest state: exported by a live member (another thread of its process; all asked at once,
        5 s budget: a survivor blocked in an MCCL all-reduce may not answer), else the newest snapshot in
        the engine's object store. Also returns the members found dead meanwhile and each answering live
        member's step."""
        futs = {r: self.engine.call(self.group[r], "export_state") for r in alive}
        if futs:
            self.engine.wait(list(futs.values()), timeout=5.0, num=len(futs))
        best: tuple[int, Any] | None = None
        steps: dict[int, int] = {}
        dead = []
        for r, f in futs.items():
            out = self.engine.outcome(f, timeout=0)
            if out.ok:
                steps[r] = int(out.value[0])
                if best is None or out.value[0] > best[0]:
                    best = out.value
            elif out.status == "dead":
                dead.append(r)
        for step in sorted(self.snapshots, reverse=True):
            if best is not None and best[0] >= step:
                break
            out = self.engine.outcome(self.snapshots[step], timeout=10)
            if out.ok:
                best = (step, out.value)
                break
        if best is None:
            raise OMSError(f"no state to recover from after step {fallback_step}: every process and snapshot is lost")
        return best[0], best[1], dead, steps

    def _settle_survivors(self, alive: list[int]) -> None:
        """Rebuildable backends: abort the collective on the survivors and wait (bounded) until their step
        calls have returned, so their processes can rebuild the group."""
        for r in alive:
            self.engine.call(self.group[r], "abort")
        futs = [self._inflight[r] for r in alive if r in self._inflight]
        if futs:
            self.engine.wait(futs, timeout=10.0, num=len(futs))
        self._inflight = {}
