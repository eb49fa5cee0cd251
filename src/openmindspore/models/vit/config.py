"""ViT configuration (a validated pydantic model mirroring Hugging Face ``ViTConfig``) and presets.

``VisionTransformerConfig`` holds the encoder fields ViT and YOLOS share (names and defaults as in
``transformers``) and their checks; ``ViTConfig`` adds the classifier. Both are immutable and are built
through :meth:`VisionTransformerConfig.from_dict`, which accepts our own keys or a Hugging Face
``config.json`` dict (its bookkeeping keys are dropped) and reports every bad value at once, with a
did-you-mean for a misspelled key (:func:`openmindspore.validation.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from openmindspore.validation import validate

__all__ = ["ViTConfig", "VisionTransformerConfig", "VIT_PRESETS", "HF_IGNORED_KEYS"]


def _size(v: Any) -> Any:
    """``224 -> (224, 224)`` before validation (lists and tuples pass through and are checked as pairs)."""
    return (v, v) if isinstance(v, int) and not isinstance(v, bool) else v


def _square(v: Any) -> Any:
    """A ``[16, 16]`` patch becomes ``16``; a non-square one is refused."""
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    if isinstance(v, (list, tuple)):
        raise ValueError("a square patch: one int (or [p, p])")
    return v


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(f"an integer, not {v}")
    return v


PositiveInt = Annotated[int, BeforeValidator(_not_bool), Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
ImageSize = Annotated[tuple[PositiveInt, PositiveInt], BeforeValidator(_size)]
PatchSize = Annotated[PositiveInt, BeforeValidator(_square)]


class VisionTransformerConfig(BaseModel):
    """Encoder hyper-parameters shared by ViT and YOLOS (names and defaults as in ``transformers``).

    ``image_size`` is the (height, width) the position embeddings were trained for; other sizes work with
    ``interpolate_pos_encoding=True`` (bicubic, as in the reference).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_size: PositiveInt = 768
    num_hidden_layers: PositiveInt = 12
    num_attention_heads: PositiveInt = 12
    intermediate_size: PositiveInt = 3072
    hidden_act: Literal["gelu"] = Field(
        default="gelu", description="the exact (erf) GELU of the reference checkpoints, the only one implemented"
    )
    hidden_dropout_prob: Probability = 0.0
    attention_probs_dropout_prob: Probability = 0.0
    initializer_range: float = Field(default=0.02, ge=0.0)
    layer_norm_eps: float = Field(default=1e-12, gt=0.0, lt=1e-2, description="a small positive float such as 1e-12")
    image_size: ImageSize = (224, 224)
    patch_size: PatchSize = 16
    num_channels: PositiveInt = 3
    qkv_bias: bool = True
    seed: int = Field(default=0, ge=0, description="seed of the random initialisation")
    id2label: dict[int, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _num_labels_from_id2label(cls, data: Any) -> Any:
        """A Hugging Face ``config.json`` stores the labels, not their count."""
        if isinstance(data, Mapping) and data.get("id2label") and "num_labels" not in data:
            return {**data, "num_labels": len(data["id2label"])}
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> Self:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} does not divide hidden_size={self.hidden_size}; "
                "choose heads so that hidden_size / heads is an integer"
            )
        if min(self.image_size) < self.patch_size:
            raise ValueError(f"image_size={list(self.image_size)} is smaller than patch_size={self.patch_size}")
        return self

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` of the trained image size."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """From our own keys or a Hugging Face ``config.json`` dict (its bookkeeping keys are ignored)."""
        kept = {k: v for k, v in d.items() if k not in HF_IGNORED_KEYS} if isinstance(d, Mapping) else d
        return validate(cls, kept, where=cls.__name__, prefix=f"{cls.__name__}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (``image_size`` as a list), loadable again with :meth:`from_dict`."""
        d = self.model_dump()
        d["image_size"] = list(self.image_size)
        return d


class ViTConfig(VisionTransformerConfig):
    """Vision Transformer for image classification (Hugging Face ``ViTConfig``)."""

    num_labels: PositiveInt = 1000


# keys of a Hugging Face config.json that carry no architecture information
HF_IGNORED_KEYS = (
    "architectures",
    "model_type",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "label2id",
    "encoder_stride",
    "pooler_output_size",
    "pooler_act",
    "_name_or_path",
    "problem_type",
    "auxiliary_loss",
    "output_hidden_states",
    "return_dict",
    "use_cache",
)

VIT_PRESETS: dict[str, dict[str, Any]] = {
    # google/vit-base-patch16-224 and the DeiT/timm-derived tiny/small ports (WinKawaks/vit-*-patch16-224)
    "vit-tiny-patch16-224": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "vit-small-patch16-224": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "vit-base-patch16-224": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
