"""The augmentation op list of a config: one pydantic model per op, discriminated by ``name``.

``augment: [{name: shift, max: 2}, {name: keep_cutout, size: 8}]`` runs the ops in order on each training
batch. Parameter ranges are checked here; what depends on the data (image size, channels, task) is
checked when the trainer builds its :class:`~openmindspore.data.augment.pipeline.Augmenter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openmindspore.errors import ConfigError
from openmindspore.validation import did_you_mean

__all__ = [
    "AugmentOp",
    "OP_NAMES",
    "OP_MODELS",
    "KEY_FEATURE_OPS",
    "MIXING_OPS",
    "ShiftOp",
    "CutoutOp",
    "RandomErasingOp",
    "TrivialAugmentOp",
    "CutMixOp",
    "MixUpOp",
    "KeepCutoutOp",
    "KeepAugmentOp",
    "SaliencyMixOp",
    "check_op_names",
    "check_order",
]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Alpha = Annotated[float, Field(gt=0.0, le=100.0, description="Beta(alpha, alpha) of the mixing weight")]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShiftOp(_Op):
    """Random translation by up to ``max`` pixels per axis (fill: the image's minimum)."""

    name: Literal["shift"]
    max: int = Field(2, ge=1, le=8)


class CutoutOp(_Op):
    """MindSpore ``CutOut``: ``patches`` squares of side ``size``, black (the data's minimum)."""

    name: Literal["cutout"]
    size: int = Field(8, ge=1)
    patches: int = Field(1, ge=1, le=16)


class RandomErasingOp(_Op):
    """MindSpore ``RandomErasing``: with probability ``p`` one box of area share in ``scale``, aspect in
    ``ratio``, set to ``value`` (0 = the mean of standardised data)."""

    name: Literal["random_erasing"]
    p: Probability = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0
    max_attempts: int = Field(10, ge=1, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> RandomErasingOp:
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"random_erasing.scale={list(self.scale)}: need 0 < min <= max <= 1 (area shares)")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"random_erasing.ratio={list(self.ratio)}: need 0 < min <= max (aspect ratios)")
        return self


class TrivialAugmentOp(_Op):
    """TrivialAugmentWide with MindSpore's operation space (``bins`` magnitude bins)."""

    name: Literal["trivial_augment"]
    bins: int = Field(31, ge=2, le=256)


class CutMixOp(_Op):
    """CutMix with a partner drawn from the whole training set; soft labels."""

    name: Literal["cutmix"]
    alpha: Alpha = 1.0
    p: Probability = 1.0


class MixUpOp(_Op):
    """MixUp with a partner drawn from the whole training set; soft labels."""

    name: Literal["mixup"]
    alpha: Alpha = 1.0


class KeepCutoutOp(_Op):
    """Cutout outside the ``keep x keep`` window of largest saliency (default: half the image side)."""

    name: Literal["keep_cutout"]
    size: int = Field(8, ge=1)
    keep: int | None = Field(None, ge=1)
    patches: int = Field(1, ge=1, le=16)


class KeepAugmentOp(_Op):
    """TrivialAugmentWide outside the ``keep x keep`` window of largest saliency (default: half the side)."""

    name: Literal["keep_augment"]
    keep: int | None = Field(None, ge=1)
    bins: int = Field(31, ge=2, le=256)


class SaliencyMixOp(_Op):
    """The partner's saliency-peak patch over the target's least salient area; area-weighted labels."""

    name: Literal["saliency_mix"]
    alpha: Alpha = 1.0
    p: Probability = 1.0


AugmentOp = Annotated[
    ShiftOp
    | CutoutOp
    | RandomErasingOp
    | TrivialAugmentOp
    | CutMixOp
    | MixUpOp
    | KeepCutoutOp
    | KeepAugmentOp
    | SaliencyMixOp,
    Field(discriminator="name"),
]

OP_MODELS: dict[str, type[BaseModel]] = {
    "shift": ShiftOp,
    "cutout": CutoutOp,
    "random_erasing": RandomErasingOp,
    "trivial_augment": TrivialAugmentOp,
    "cutmix": CutMixOp,
    "mixup": MixUpOp,
    "keep_cutout": KeepCutoutOp,
    "keep_augment": KeepAugmentOp,
    "saliency_mix": SaliencyMixOp,
}
OP_NAMES = tuple(OP_MODELS)
KEY_FEATURE_OPS = frozenset({"keep_cutout", "keep_augment", "saliency_mix"})
MIXING_OPS = frozenset({"cutmix", "mixup", "saliency_mix"})
_MAP_STAYS = frozenset({"shift", "cutout", "random_erasing", "keep_cutout"})  # a saliency map still fits after these


def check_op_names(ops: Any, field: str = "augment") -> list[ConfigError]:
    """Problems with the ``name`` of each op in a raw ``augment`` list (an unknown name lists the valid ones)."""
    if not isinstance(ops, list):
        return [ConfigError(field, ops, "a list of ops, e.g. [{name: shift, max: 2}, {name: keep_cutout, size: 8}]")]
    problems = []
    for i, op in enumerate(ops):
        name = op.get("name") if isinstance(op, dict) else None
        if not isinstance(op, dict) or name is None:
            problems.append(ConfigError(f"{field}[{i}]", op, "a mapping with a name, e.g. {name: cutout, size: 8}"))
        elif name not in OP_NAMES:
            hint = did_you_mean(str(name), OP_NAMES)
            problems.append(
                ConfigError(f"{field}[{i}].name", name, f"one of {', '.join(OP_NAMES)}", hint or "see docs/augment.md")
            )
    return problems


def check_order(names: Sequence[str], field: str = "augment") -> None:
    """A key-feature op reads the saliency map of the image as it stands: only ``shift`` (the map is shifted
    along) and erasing ops may come before it."""
    for i, name in enumerate(names):
        if name in KEY_FEATURE_OPS:
            bad = [n for n in names[:i] if n not in _MAP_STAYS]
            if bad:
                raise ConfigError(
                    f"{field}[{i}].name",
                    name,
                    "a key-feature op placed before ops that move or mix pixels "
                    f"(only {', '.join(sorted(_MAP_STAYS))} may precede it)",
                    f"move {name} before {bad[0]}",
                )
