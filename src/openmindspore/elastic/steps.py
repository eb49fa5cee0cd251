"""Running one lock-step global step on a group and classifying what went wrong: the driver's half of
failure detection (the workers' half is the collective's own deadlines, :mod:`~openmindspore.elastic.comm`).

Owns the step calls in flight (rank -> future). Reads the recent step times (the deadline) and the group
it is handed; calls the group's workers (``step``, ``ping``, ``abort``) and nothing else.

* **crash** — the engine reports a process dead, or a rank whose collective failed names peers that
  turn out dead (the engine reports a death within ~0.1 s; waited for up to 2 s);
* **hang** — a step outlives its deadline (``min(hang_timeout, max(1 s, 5 x median step time))``) and
  some ranks do not answer a heartbeat within ``max(2 s, deadline / 2)``; if all answer, the step is
  merely slow and gets another deadline, up to ``3 x hang_timeout``; every rank silent at once counts
  only on the second deadline (an overloaded node, more often than a group-wide hang).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from openmindspore.elastic.messages import CommFailure, StepResult
from openmindspore.elastic.stats import StepStats
from openmindspore.engine import ActorRef, Engine

__all__ = ["FailureKind", "GroupFailure", "StepRunner"]

FailureKind = Literal["crash", "hang", "preempt"]


class GroupFailure(Exception):
    """``kind`` (crash | hang | preempt) of ``ranks`` during 1-based global ``step``; ``t_fail`` is when that
    step started (epoch seconds), ``t_detect`` when the failure was recognised. ``retryable`` is False for a
    group that could not form although every member is alive (e.g. their nodes cannot reach each other's
    ports): other processes on the same nodes would fail the same way."""

    def __init__(
        self, kind: FailureKind, ranks: list[int], step: int, t_fail: float, detail: str = "", retryable: bool = True
    ) -> None:
        super().__init__(f"{kind} of rank(s) {ranks} at step {step}: {detail}")
        self.kind, self.ranks, self.step, self.t_fail, self.detail = kind, ranks, step, t_fail, detail
        self.retryable = retryable
        self.t_detect = time.time()


class StepRunner:
    """Runs global steps on a group over ``engine``, with deadlines from ``stats`` capped by
    ``hang_timeout`` seconds (see the module docstring)."""

    def __init__(self, engine: Engine, hang_timeout: float, stats: StepStats) -> None:
        self.engine, self.hang_timeout, self.stats = engine, hang_timeout, stats
        self.inflight: dict[int, Any] = {}  # rank -> future of the step in progress

    def deadline(self) -> float:
        """Seconds a step may take before its ranks are checked for a hang."""
        recent = self.stats.recent_step_s(3)
        if recent is None:
            return self.hang_timeout
        return min(self.hang_timeout, max(1.0, 5 * recent))

    def run(self, step: int, group: list[ActorRef]) -> list[StepResult]:
        """Run global step ``step`` (0-based index) on every rank of ``group``; their results by rank, or
        :class:`GroupFailure`."""
        t0 = time.time()
        futs = [self.engine.call(a, "step", step) for a in group]
        self.inflight = dict(enumerate(futs))
        rank_of = {id(f): r for r, f in enumerate(futs)}
        results: dict[int, StepResult] = {}
        comm_errors: dict[int, CommFailure] = {}
        pending = list(futs)
        deadline = t0 + self.deadline()
        all_silent_before = False
        while pending:
            ready, pending = self.engine.wait(pending, timeout=max(0.0, deadline - time.time()))
            for f in ready:
                out = self.engine.outcome(f, timeout=0)
                r = rank_of[id(f)]
                if out.ok and isinstance(out.value, CommFailure):
                    comm_errors[r] = out.value  # alive, its collective failed: someone else is the cause
                elif out.ok:
                    results[r] = out.value
                else:
                    dead = [
                        rank_of[id(g)] for g in pending + ready if self.engine.outcome(g, timeout=0).status == "dead"
                    ]
                    raise GroupFailure("crash", sorted(set(dead) | {r}), step + 1, t0, out.error)
            if comm_errors:
                raise self._comm_failure(group, step, t0, comm_errors, [rank_of[id(f)] for f in pending])
            if pending and time.time() >= deadline:
                hung = self.unresponsive(
                    group, [rank_of[id(f)] for f in pending], timeout=max(2.0, 0.5 * self.deadline())
                )
                if len(hung) == len(group) > 1 and not all_silent_before:
                    # every rank silent at once is far more often an overloaded node than a group-wide
                    # hang: confirm with another round at the next deadline (still bounded by the cap)
                    all_silent_before, hung = True, []
                if hung or time.time() - t0 >= 3 * self.hang_timeout:
                    # a process that died is a crash even when the deadline came first (under load the
                    # engine may report the death after the 1 s minimum deadline)
                    kind: FailureKind = (
                        "crash"
                        if hung and all(self.engine.outcome(futs[r], timeout=0).status == "dead" for r in hung)
                        else "hang"
                    )
                    raise GroupFailure(
                        kind,
                        hung or sorted(rank_of[id(f)] for f in pending),
                        step + 1,
                        t0,
                        f"step {step + 1} exceeded its {self.deadline():.1f} s deadline",
                    )
                deadline = time.time() + self.deadline()
        self.inflight = {}
        return [results[r] for r in range(len(group))]

    def _comm_failure(
        self, group: list[ActorRef], step: int, t0: float, errors: dict[int, CommFailure], pending: list[int]
    ) -> GroupFailure:
        """Classify a failed collective (rebuildable backends): the ranks that died (the engine reports
        them within ~0.1 s; waited for up to 2 s) or, if none did, the ranks the survivors named that do not
        answer a heartbeat (hung)."""
        futs = {r: self.inflight[r] for r in pending}
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
        detail = next(iter(errors.values())).error
        if dead:
            return GroupFailure("crash", sorted(dead), step + 1, t0, detail)
        named = sorted({r for e in errors.values() for r in e.lost} | set(futs))
        hung = self.unresponsive(group, named, timeout=2.0) if named else []
        return GroupFailure("hang", hung or named or sorted(futs), step + 1, t0, detail)

    def unresponsive(self, group: list[ActorRef], ranks: list[int], timeout: float) -> list[int]:
        """Ranks whose process does not answer a heartbeat within ``timeout`` (a thread of a live worker
        answers even while its main thread waits in a collective)."""
        pings = {r: self.engine.call(group[r], "ping") for r in ranks}
        self.engine.wait(list(pings.values()), timeout=timeout, num=len(pings))
        return [r for r, f in pings.items() if not self.engine.outcome(f, timeout=0).ok]

    def settle(self, group: list[ActorRef], alive: list[int]) -> None:
        """Rebuildable backends: abort the collective on the survivors and wait (bounded) until their step
        calls have returned, so their processes can rebuild the group."""
        for r in alive:
            self.engine.call(group[r], "abort")
        futs = [self.inflight[r] for r in alive if r in self.inflight]
        if futs:
            self.engine.wait(futs, timeout=10.0, num=len(futs))
        self.inflight = {}
