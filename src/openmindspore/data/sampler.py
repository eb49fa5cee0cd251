"""Deterministic, resumable, shardable sampling.

The sampler's position ``(seed, epoch, offset)`` is part of the training state: saving it and loading
it into a fresh sampler reproduces the exact same sequence of batches. Each step draws one *global*
batch of sample indices; a worker of a data-parallel group takes its contiguous shard of it with
:func:`shard`, so the global batch (and thus the maths of the step) does not depend on the world size.
An epoch's last batch may be smaller: every sample of an epoch is visited exactly once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["SamplerState", "ResumableSampler", "shard"]


@dataclass(frozen=True)
class SamplerState:
    seed: int
    epoch: int
    offset: int

    def to_dict(self) -> dict:
        return asdict(self)


class ResumableSampler:
    """Yields global batches of indices into ``range(num_samples)``.

    Each epoch is a permutation drawn from ``np.random.default_rng([seed, epoch])``, so any position can
    be restored without replaying the past.
    """

    def __init__(self, num_samples: int, global_batch: int, seed: int = 0, shuffle: bool = True) -> None:
        if num_samples < 1:
            raise ConfigError("num_samples", num_samples, "a positive integer")
        if global_batch < 1:
            raise ConfigError("batch_size", global_batch, "a positive integer")
        self.num_samples, self.global_batch, self.seed, self.shuffle = num_samples, global_batch, seed, shuffle
        self.epoch, self.offset = 0, 0
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_samples // self.global_batch)

    def permutation(self, epoch: int) -> np.ndarray:
        """The order in which ``epoch`` visits the samples (cached for the current epoch)."""
        if epoch != self._perm_epoch:
            if self.shuffle:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            else:
                self._perm = np.arange(self.num_samples)
            self._perm_epoch = epoch
        return self._perm

    def next_batch(self) -> np.ndarray:
        """Indices of the next global batch (int64); advances the position."""
        perm = self.permutation(self.epoch)
        batch = perm[self.offset : self.offset + self.global_batch]
        self.offset += len(batch)
        if self.offset >= self.num_samples:
            self.epoch, self.offset = self.epoch + 1, 0
        return batch.astype(np.int64)

    def state(self) -> SamplerState:
        return SamplerState(self.seed, self.epoch, self.offset)

    def load_state(self, state: SamplerState | dict) -> None:
        s = state if isinstance(state, SamplerState) else SamplerState(**state)
        if not 0 <= s.offset < self.num_samples:
            raise ConfigError(
                "sampler.offset",
                s.offset,
                f"0 <= offset < {self.num_samples}",
                "the checkpoint belongs to a different dataset",
            )
        self.seed, self.epoch, self.offset = s.seed, s.epoch, s.offset


def shard(indices: np.ndarray, world_size: int, rank: int) -> np.ndarray:
    """The contiguous part of a global batch that ``rank`` of ``world_size`` processes.

    Parts differ in size by at most one (``np.array_split``); concatenating all ranks' parts in rank
    order gives back ``indices``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError("rank", rank, f"0 <= rank < world_size={world_size}")
    return np.array_split(indices, world_size)[rank]
