"""YOLOS object detection equal to Hugging Face ``YolosForObjectDetection``; presets in the registry.

Host-side pieces live in submodules imported on demand: ``processor`` (pre/post-processing),
``loss`` (Hungarian matcher + DETR loss), ``coco_eval`` (pycocotools mAP), ``synthetic`` (offline
detection dataset), ``finetune`` (training loop).
"""

from __future__ import annotations

from typing import Any

from openmindspore.models.registry import register_model
from openmindspore.models.yolos.config import YOLOS_PRESETS, YolosConfig
from openmindspore.models.yolos.model import YolosForObjectDetection, YolosOutput

__all__ = ["YolosConfig", "YOLOS_PRESETS", "YolosForObjectDetection", "YolosOutput", "build_yolos"]


def build_yolos(preset: str | None = None, **overrides: Any) -> YolosForObjectDetection:
    """``YolosForObjectDetection`` from a preset name (or none) with config overrides."""
    cfg = dict(YOLOS_PRESETS[preset]) if preset else {}
    cfg.update(overrides)
    return YolosForObjectDetection(YolosConfig.from_dict(cfg))


def _register() -> None:
    register_model("yolos")(lambda **cfg: build_yolos(None, **cfg))
    for name in YOLOS_PRESETS:
        register_model(name)(lambda _n=name, **cfg: build_yolos(_n, **cfg))


_register()
