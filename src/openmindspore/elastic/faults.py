"""Fault injection (``--kill-worker-at STEP[:RANK]`` and its hang/preempt siblings).

Owns the run's fault plan: the faults asked for and which of them have fired, read from the run's fault
log (a worker appends a fault's index there, fsynced, before it signals itself, so the driver knows
exactly which fired even when several processes die at once). Touches only that log file; the workers
that fire the faults get the still-armed ones as :class:`~openmindspore.elastic.messages.ArmedFault`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from openmindspore.elastic.messages import ArmedFault, FaultKind
from openmindspore.errors import ConfigError

__all__ = ["FaultKind", "FAULT_KINDS", "Fault", "FaultPlan", "parse_fault"]

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


@dataclass(frozen=True)
class Fault:
    """Inject ``kind`` into ``rank`` during global step ``step`` (1-based: step 5 = the fifth step)."""

    kind: FaultKind
    step: int
    rank: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError("fault kind", self.kind, f"one of {list(FAULT_KINDS)}")
        if self.step < 1 or self.rank < 0:
            raise ConfigError(f"--{self.kind}-worker-at", f"{self.step}:{self.rank}", "STEP >= 1 and RANK >= 0")


def parse_fault(kind: FaultKind, spec: str) -> Fault:
    """``--{kind}-worker-at`` ``STEP`` or ``STEP:RANK`` as a :class:`Fault`."""
    flag = f"--{kind}-worker-at"
    try:
        step_s, _, rank_s = str(spec).partition(":")
        step, rank = int(step_s), int(rank_s or 0)
    except ValueError:
        raise ConfigError(flag, spec, "STEP or STEP:RANK with integers, e.g. 5 or 5:1") from None
    if step < 1 or rank < 0:
        raise ConfigError(flag, spec, "STEP >= 1 and RANK >= 0")
    return Fault(kind, step, rank)


class FaultPlan:
    """The faults of a run (indices into ``faults``) and the ones that fired (each fires once)."""

    def __init__(self, faults: tuple[Fault, ...], log: Path) -> None:
        self.faults, self.log = faults, log
        self.fired: set[int] = set()

    def armed(self) -> list[ArmedFault]:
        """The faults that have not fired yet (re-reads the log first)."""
        if self.log.is_file():
            self.fired |= {int(x) for x in self.log.read_text().split()}
        return [ArmedFault(i, f.kind, f.step, f.rank) for i, f in enumerate(self.faults) if i not in self.fired]
