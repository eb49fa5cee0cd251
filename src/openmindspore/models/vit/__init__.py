"""Vision Transformer (ViT) equal to Hugging Face ``ViTForImageClassification``; presets in the registry."""

from __future__ import annotations

from typing import Any

from openmindspore.models.registry import register_model
from openmindspore.models.vit.config import VIT_PRESETS, ViTConfig
from openmindspore.models.vit.interpolate import bicubic_matrix, resize_grid
from openmindspore.models.vit.model import ViTForImageClassification, ViTModel, ViTOutput

__all__ = [
    "ViTConfig",
    "VIT_PRESETS",
    "ViTForImageClassification",
    "ViTModel",
    "ViTOutput",
    "bicubic_matrix",
    "resize_grid",
    "build_vit",
]


def build_vit(preset: str | None = None, **overrides: Any) -> ViTForImageClassification:
    """``ViTForImageClassification`` from a preset name (or none) with config overrides."""
    cfg = dict(VIT_PRESETS[preset]) if preset else {}
    cfg.update(overrides)
    return ViTForImageClassification(ViTConfig.from_dict(cfg))


def _register() -> None:
    register_model("vit")(lambda **cfg: build_vit(None, **cfg))
    for name in VIT_PRESETS:
        register_model(name)(lambda _n=name, **cfg: build_vit(_n, **cfg))


_register()
