"""The augmentation pipeline of a run: a validated op list applied to each training shard, sample by sample.

Owns the run's ops after their checks against the data (an image op on tabular data, channels-last images,
a box larger than the image, a mixing op on a regression task, TrivialAugment on other than 1 or 3
channels: each a :class:`ConfigError` naming ``augment[i]``), and the data's value range (black = the
training split's minimum, used as the cutout fill and the uint8 scale of TrivialAugment).

:meth:`Augmenter.__call__` takes the rows of one shard and returns the augmented images, soft labels when
a mixing op is in the list, and each sample's accumulated shift (so a saliency map taken from the
augmented input can be moved back). Saliency maps for key-feature ops come in as an array over all
training rows (the ``train`` layer computes them); the batch's maps are shifted along with the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openmindspore.data.augment._common import check_images, shift_images
from openmindspore.data.augment.erasing import cutout, random_erasing, shift_offsets
from openmindspore.data.augment.keyfeature import keep_augment, keep_cutout, saliency_mix
from openmindspore.data.augment.mixing import cutmix, mixup, one_hot
from openmindspore.data.augment.ops import (
    KEY_FEATURE_OPS,
    MIXING_OPS,
    AugmentOp,
    CutMixOp,
    CutoutOp,
    KeepAugmentOp,
    KeepCutoutOp,
    MixUpOp,
    RandomErasingOp,
    SaliencyMixOp,
    ShiftOp,
    TrivialAugmentOp,
    check_order,
)
from openmindspore.data.augment.trivial import trivial_augment
from openmindspore.errors import ConfigError

__all__ = ["Augmenter", "Augmented", "AugmentSource"]


@dataclass(frozen=True)
class AugmentSource:
    """What ops read besides the shard: every training row (mixing partners) and, for key-feature ops,
    every row's saliency map ``[rows, H, W]``."""

    x: np.ndarray
    y: np.ndarray
    maps: np.ndarray | None = None


@dataclass(frozen=True)
class Augmented:
    """An augmented shard: images, soft labels ``[N, classes]`` (None: the int labels stand) and each
    sample's total shift ``[N, 2]`` (dy, dx)."""

    x: np.ndarray
    soft: np.ndarray | None
    offsets: np.ndarray


class Augmenter:
    """A run's augmentation ops, checked against its data (see the module docstring)."""

    def __init__(
        self,
        ops: Sequence[AugmentOp],
        input_shape: tuple[int, ...],
        task: str,
        num_classes: int,
        value_range: tuple[float, float],
        field: str = "augment",
    ) -> None:
        self.ops = list(ops)
        self.names = [op.name for op in self.ops]
        self.num_classes = num_classes
        lo, hi = (float(v) for v in value_range)
        self.lo, self.hi = lo, (hi if hi > lo else lo + 1.0)
        self.needs_saliency = any(n in KEY_FEATURE_OPS for n in self.names)
        self.soft = any(n in MIXING_OPS for n in self.names)
        if self.ops:
            self._check(tuple(int(s) for s in input_shape), task, field)

    def _check(self, shape: tuple[int, ...], task: str, field: str) -> None:
        if len(shape) != 3:
            raise ConfigError(
                f"{field}[0].name",
                self.names[0],
                "image data [C, H, W] for image augmentation",
                f"this dataset's inputs have shape {list(shape)} (tabular); remove augment (and augment_shift)",
            )
        check_images(np.empty((1, *shape), np.float32), f"{field} (input shape)")
        check_order(self.names, field)
        c, h, w = shape
        for i, op in enumerate(self.ops):
            where = f"{field}[{i}]"
            if op.name in MIXING_OPS and task != "classification":
                raise ConfigError(
                    f"{where}.name", op.name, "a classification dataset (it mixes labels)", f"this one is {task}"
                )
            if isinstance(op, (TrivialAugmentOp, KeepAugmentOp)) and c not in (1, 3):
                raise ConfigError(f"{where}.name", op.name, "images with 1 or 3 channels", f"these have {c}")
            limits = {"max": min(h, w) - 1, "size": min(h, w), "keep": min(h, w)}
            for key, limit in limits.items():
                value = getattr(op, key, None)
                if isinstance(value, int) and value > limit:
                    raise ConfigError(f"{where}.{key}", value, f"<= {limit} for {h}x{w} images")

    def keep_side(self, op: KeepCutoutOp | KeepAugmentOp, h: int, w: int) -> int:
        return op.keep if op.keep is not None else max(1, min(h, w) // 2)

    def __call__(
        self, x: np.ndarray, y: np.ndarray, rows: np.ndarray, ids: np.ndarray, seed: int, epoch: int, src: AugmentSource
    ) -> Augmented:
        """Augment the shard ``x`` (training rows ``rows``, sample ids ``ids``, labels ``y``) for ``epoch``."""
        n, h, w = len(x), x.shape[-2], x.shape[-1]
        soft = one_hot(y, self.num_classes) if self.soft else None
        offsets = np.zeros((n, 2), np.int64)
        maps = None
        if self.needs_saliency:
            if src.maps is None:
                raise RuntimeError("key-feature ops need the training rows' saliency maps")
            maps = src.maps[rows]
        for pos, op in enumerate(self.ops):
            if isinstance(op, ShiftOp):
                shifts = shift_offsets(ids, seed, epoch, op.max, pos)
                x = shift_images(x, shifts, x.min(axis=(1, 2, 3)))  # fill: each image's minimum
                if maps is not None:
                    maps = shift_images(maps, shifts, 0.0)
                offsets += shifts
            elif isinstance(op, CutoutOp):
                x = cutout(x, ids, seed, epoch, op.size, self.lo, op.patches, pos)
            elif isinstance(op, RandomErasingOp):
                x = random_erasing(x, ids, seed, epoch, op.p, op.scale, op.ratio, op.value, op.max_attempts, pos)
            elif isinstance(op, TrivialAugmentOp):
                x = trivial_augment(x, ids, seed, epoch, self.lo, self.hi, op.bins, pos)
            elif isinstance(op, KeepCutoutOp):
                assert maps is not None
                keep = self.keep_side(op, h, w)
                x = keep_cutout(x, maps, ids, seed, epoch, op.size, keep, self.lo, op.patches, pos)
            elif isinstance(op, KeepAugmentOp):
                assert maps is not None
                x = keep_augment(x, maps, ids, seed, epoch, self.keep_side(op, h, w), self.lo, self.hi, op.bins, pos)
            elif isinstance(op, CutMixOp):
                assert soft is not None
                x, soft = cutmix(x, soft, ids, seed, epoch, src.x, src.y, op.alpha, op.p, pos)
            elif isinstance(op, MixUpOp):
                assert soft is not None
                x, soft = mixup(x, soft, ids, seed, epoch, src.x, src.y, op.alpha, pos)
            elif isinstance(op, SaliencyMixOp):
                assert soft is not None and maps is not None and src.maps is not None
                x, soft = saliency_mix(x, soft, maps, ids, seed, epoch, src.x, src.y, src.maps, op.alpha, op.p, pos)
        return Augmented(np.ascontiguousarray(x, dtype=np.float32), soft, offsets)
