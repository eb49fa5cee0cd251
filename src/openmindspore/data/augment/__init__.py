"""Deterministic image augmentation keyed by ``(seed, epoch, sample id)``, incl. key-feature (saliency-guided) ops.

Keying by the global sample id (not by the position in a batch or by the worker) makes augmentation
exactly reproducible after a resume and independent of how a global batch is split across workers.
Ops that need a partner (CutMix, MixUp, SaliencyMix) draw it by key from the whole training set.

* baselines: :func:`random_shift`, :func:`cutout`, :func:`random_erasing`, :func:`trivial_augment`,
  :func:`cutmix`, :func:`mixup` (matched against MindSpore's ``vision`` ops, see each module);
* key-feature ops: :func:`keep_cutout`, :func:`keep_augment`, :func:`saliency_mix` (saliency maps come in
  as arrays; ``openmindspore.train.saliency`` computes them);
* the config's op list (:mod:`.ops`) and the pipeline a run applies (:class:`Augmenter`).
"""

from openmindspore.data.augment.erasing import cutout, cutout_box, erasing_box, random_erasing, random_shift
from openmindspore.data.augment.keyfeature import (
    bottom_window,
    keep_augment,
    keep_cutout,
    saliency_mix,
    top_window,
    window_sums,
)
from openmindspore.data.augment.mixing import cutmix, cutmix_box, mixup, one_hot
from openmindspore.data.augment.ops import KEY_FEATURE_OPS, MIXING_OPS, OP_NAMES, AugmentOp
from openmindspore.data.augment.pipeline import Augmented, Augmenter, AugmentSource
from openmindspore.data.augment.trivial import TA_OPS, ta_apply, ta_space, trivial_augment

__all__ = [
    "random_shift",
    "cutout",
    "cutout_box",
    "random_erasing",
    "erasing_box",
    "trivial_augment",
    "ta_space",
    "ta_apply",
    "TA_OPS",
    "cutmix",
    "cutmix_box",
    "mixup",
    "one_hot",
    "keep_cutout",
    "keep_augment",
    "saliency_mix",
    "top_window",
    "bottom_window",
    "window_sums",
    "AugmentOp",
    "OP_NAMES",
    "KEY_FEATURE_OPS",
    "MIXING_OPS",
    "Augmenter",
    "Augmented",
    "AugmentSource",
]
