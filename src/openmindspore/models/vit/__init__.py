"""Vision Transformer (ViT) equal to Hugging Face ``ViTForImageClassification``; presets in the registry.

The registered names (``vit``, ``vit-tiny-patch16-224``, ...) take the trainer's data-derived arguments
(``oms train`` with ``model: {name: vit-...}`` on image data): ``input_shape`` of one sample gives
``num_channels`` and ``image_size``, ``num_classes`` gives ``num_labels``, each unless the spec sets it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openmindspore.errors import ConfigError
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
    """``ViTForImageClassification`` from a preset name (or none) with config overrides. Without dropout the
    model is ``graph_safe``: the trainer compiles its forward and backward into one graph."""
    cfg = dict(VIT_PRESETS[preset]) if preset else {}
    cfg.update(overrides)
    model = ViTForImageClassification(ViTConfig.from_dict(cfg))
    c = model.config
    model.graph_safe = c.hidden_dropout_prob == 0 and c.attention_probs_dropout_prob == 0
    return model


def _factory(preset: str | None) -> Callable[..., ViTForImageClassification]:
    def make(
        input_shape: tuple[int, ...] | None = None, num_classes: int | None = None, **cfg: Any
    ) -> ViTForImageClassification:
        if input_shape is not None:
            if len(input_shape) != 3:
                raise ConfigError(
                    "model.name",
                    preset or "vit",
                    "image data: samples of shape [channels, height, width]",
                    f"this dataset's samples have shape {list(input_shape)}; use an image dataset "
                    "(e.g. format: imagefolder) or a model for tables (mlp)",
                )
            cfg.setdefault("num_channels", int(input_shape[0]))
            cfg.setdefault("image_size", [int(v) for v in input_shape[1:]])
        if num_classes is not None:
            cfg.setdefault("num_labels", int(num_classes))
        return build_vit(preset, **cfg)

    return make


def _register() -> None:
    register_model("vit")(_factory(None))
    for name in VIT_PRESETS:
        register_model(name)(_factory(name))


_register()
