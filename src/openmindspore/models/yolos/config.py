"""YOLOS configuration (validated dataclass mirroring Hugging Face ``YolosConfig``) and presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openmindspore.errors import ConfigError
from openmindspore.models.vit.config import HF_IGNORED_KEYS, check_fields, config_from_dict, pair

__all__ = ["YolosConfig", "YOLOS_PRESETS"]


@dataclass
class YolosConfig:
    """YOLOS hyper-parameters; names, defaults and loss weights as in Hugging Face ``YolosConfig``.

    ``num_labels`` follows the DETR convention: class ids ``0 .. num_labels-1`` (COCO: 91 = max id + 1);
    the classifier has one extra "no object" output.
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    image_size: tuple[int, int] = (512, 864)
    patch_size: int = 16
    num_channels: int = 3
    qkv_bias: bool = True
    num_detection_tokens: int = 100
    use_mid_position_embeddings: bool = True
    num_labels: int = 91
    class_cost: float = 1.0
    bbox_cost: float = 5.0
    giou_cost: float = 2.0
    bbox_loss_coefficient: float = 5.0
    giou_loss_coefficient: float = 2.0
    eos_coefficient: float = 0.1
    seed: int = 0
    id2label: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = pair(self.image_size, "YolosConfig.image_size")
        if isinstance(self.patch_size, (list, tuple)):
            h, w = pair(self.patch_size, "YolosConfig.patch_size")
            if h != w:
                raise ConfigError("YolosConfig.patch_size", list(self.patch_size), "a square patch")
            self.patch_size = h
        check_fields(self)
        for f in ("num_detection_tokens", "num_labels"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"YolosConfig.{f}", v, "a positive int")
        if self.use_mid_position_embeddings and self.num_hidden_layers < 2:
            raise ConfigError(
                "YolosConfig.num_hidden_layers",
                self.num_hidden_layers,
                ">= 2 with use_mid_position_embeddings=True",
                "add layers or set use_mid_position_embeddings: false",
            )
        for f in (
            "class_cost",
            "bbox_cost",
            "giou_cost",
            "bbox_loss_coefficient",
            "giou_loss_coefficient",
            "eos_coefficient",
        ):
            if float(getattr(self, f)) < 0:
                raise ConfigError(f"YolosConfig.{f}", getattr(self, f), "a non-negative number")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` the (mid-)position embeddings were trained for."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> YolosConfig:
        """From our own keys or a Hugging Face ``config.json`` dict."""
        return config_from_dict(cls, d, ignore=HF_IGNORED_KEYS)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        return d


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
