"""A worker's recent completed states, kept so that snapshots and recovery never wait for its step.

Owns the stash: the state after each of the last few completed steps (references to the parameter
and optimizer arrays, which the next update replaces rather than overwrites: about a millisecond on the
critical path), and the lock that guards it (the worker also holds it while applying a step, so a
state is never read half-updated). Reads the worker's trainer; never changes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from openmindspore.data.sampler import SamplerState
    from openmindspore.elastic.zero import ShardedOptimizer
    from openmindspore.train.state import TrainState
    from openmindspore.train.trainer import Trainer

__all__ = ["StateStash", "Stashed"]

KEEP = 3  # completed steps held (the sharded optimizer's ring keeps more: zero.RING)


@dataclass(frozen=True, slots=True)
class Stashed:
    """The state after global step ``step``; the optimizer's slots are ``opt`` or, sharded, read on demand
    from ``zero`` (whose ring keeps recent steps)."""

    params: dict[str, np.ndarray]
    opt: dict[str, list[np.ndarray]] | None
    zero: ShardedOptimizer | None
    t: int
    step: int
    sampler: SamplerState
    samples_seen: int
    arrays: dict[str, np.ndarray]  # the trainer's other state arrays (saliency maps), by reference


class StateStash:
    """The last ``KEEP`` completed states of ``trainer`` (see the module docstring)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.lock = threading.Lock()
        self._ready = threading.Condition(self.lock)
        self._by_step: dict[int, Stashed] = {}

    def record(self, zero: ShardedOptimizer | None) -> None:
        """Keep the state of the step just completed (caller holds ``lock``); ``zero``: the optimizer's
        state is sharded there."""
        tr = self.trainer
        # host copies now: the optimizer writes the next step's values into the same storage, and reading
        # a device value later would wait for the stream, which a survivor's next MCCL all-reduce blocks
        # for ~30 s once a peer is dead
        self._by_step[tr.step] = Stashed(
            params=tr.params_numpy(),
            # new arrays every step; sharded: read from the shards on demand
            opt=None if zero is not None else {slot: list(arrs) for slot, arrs in tr.optimizer.state.items()},
            zero=zero,
            t=tr.optimizer.t,
            step=tr.step,
            sampler=tr.sampler.state(),
            samples_seen=tr.samples_seen,
            arrays=tr.state_arrays(),
        )
        for old in sorted(self._by_step)[:-KEEP]:
            del self._by_step[old]
        self._ready.notify_all()

    def latest(self) -> Stashed:
        """The newest completed state (the step thread's own read, or under ``lock``)."""
        return self._by_step[max(self._by_step)]

    def wait_for(self, step: int, timeout: float) -> Stashed:
        """The state after ``step``, waiting up to ``timeout`` s for the step to complete."""
        with self.lock:
            if not self._ready.wait_for(lambda: max(self._by_step, default=-1) >= step, timeout):
                raise TimeoutError(f"step {step} not reached within {timeout} s")
            stash = self._by_step.get(step)
            if stash is None:
                raise RuntimeError(f"the state of step {step} is no longer held (now at {max(self._by_step)})")
        return stash

    def unshard(self, zero: ShardedOptimizer) -> dict[str, list[np.ndarray]]:
        """Leaving sharded mode (caller holds ``lock``): the full optimizer state of the newest stashed step,
        read from every rank's shard (before the group's shared memory goes). Older states that need the
        shards are dropped; if the read fails, all are (the driver must load a state then)."""
        latest = max(self._by_step)
        try:
            full = zero.read(latest)
        except BaseException:
            self._by_step.clear()  # no consistent state here any more
            raise
        self._by_step = {latest: replace(self._by_step[latest], opt=full, zero=None)}  # old mappings can go
        return full

    def train_state(self, stash: Stashed) -> TrainState:
        """``stash`` as a ``TrainState`` (its arrays are not copied: the engine serialises them out of band,
        one copy into its object store; ``to_bytes()`` costs ~10x more for a 10M-parameter model)."""
        from openmindspore.train.state import TrainState

        opt = self.trainer.optimizer
        if stash.opt is not None:
            slots = stash.opt
        elif stash.zero is not None:
            slots = stash.zero.read(stash.step)
        else:
            raise RuntimeError(f"the optimizer state of step {stash.step} is not held")
        opt_state = {f"{slot}.{p.name}": a for slot, arrs in slots.items() for p, a in zip(opt.params, arrs)}
        opt_state["t"] = np.asarray([stash.t], dtype=np.int64)
        return TrainState(
            params=stash.params,
            opt_state=opt_state,
            step=stash.step,
            sampler=stash.sampler,
            seed=self.trainer.cfg.seed,
            samples_seen=stash.samples_seen,
            arrays=stash.arrays,
        )
