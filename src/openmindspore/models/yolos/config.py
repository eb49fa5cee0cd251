"""YOLOS configuration (a validated pydantic model mirroring Hugging Face ``YolosConfig``) and presets."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from openmindspore.models.vit.config import ImageSize, PositiveInt, VisionTransformerConfig

__all__ = ["YolosConfig", "YOLOS_PRESETS"]


class YolosConfig(VisionTransformerConfig):
    """YOLOS hyper-parameters; names, defaults and loss weights as in Hugging Face ``YolosConfig``.

    ``num_labels`` follows the DETR convention: class ids ``0 .. num_labels-1`` (COCO: 91 = max id + 1);
    the classifier has one extra "no object" output.
    """

    image_size: ImageSize = (512, 864)
    num_detection_tokens: PositiveInt = 100
    use_mid_position_embeddings: bool = True
    num_labels: PositiveInt = 91
    class_cost: float = Field(default=1.0, ge=0.0)
    bbox_cost: float = Field(default=5.0, ge=0.0)
    giou_cost: float = Field(default=2.0, ge=0.0)
    bbox_loss_coefficient: float = Field(default=5.0, ge=0.0)
    giou_loss_coefficient: float = Field(default=2.0, ge=0.0)
    eos_coefficient: float = Field(default=0.1, ge=0.0)

    @model_validator(mode="after")
    def _check_mid_positions(self) -> Self:
        if self.use_mid_position_embeddings and self.num_hidden_layers < 2:
            raise ValueError(
                f"num_hidden_layers={self.num_hidden_layers} must be >= 2 with use_mid_position_embeddings=True; "
                "add layers or set use_mid_position_embeddings: false"
            )
        return self


YOLOS_PRESETS: dict[str, dict[str, Any]] = {
    # hustvl/yolos-{tiny,small,base} (values from their config.json / the reference conversion script)
    "yolos-tiny": dict(
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        image_size=(800, 1333),
        use_mid_position_embeddings=False,
    ),
    "yolos-small": dict(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        image_size=(512, 864),
        use_mid_position_embeddings=True,
    ),
    "yolos-base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        image_size=(800, 1344),
        use_mid_position_embeddings=True,
    ),
}
