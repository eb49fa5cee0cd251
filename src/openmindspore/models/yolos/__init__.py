"""YOLOS object detection equal to Hugging Face ``YolosForObjectDetection``; presets in the registry.

Host-side pieces live in submodules imported on demand: ``processor`` (pre/post-processing),
``loss`` (Hungarian matcher + DETR loss), ``train_step`` (the dense, graph-safe DETR loss the trainer
compiles), ``coco_eval`` (pycocotools mAP), ``synthetic`` (offline detection dataset). ``dataset`` (the
reader of the ``coco`` and ``synthetic_detection`` dataset formats) and ``build`` (the registered builders,
taking the trainer's arguments) are imported here. Training runs through the one trainer with the
``detection`` task (``openmindspore.train.tasks.detection``).
"""

from __future__ import annotations

from typing import Any

from openmindspore.models.registry import register_model
from openmindspore.models.yolos import dataset  # noqa: F401  (registers the detection dataset reader)
from openmindspore.models.yolos.build import yolos_factory
from openmindspore.models.yolos.config import YOLOS_PRESETS, YolosConfig
from openmindspore.models.yolos.model import YolosForObjectDetection, YolosOutput

__all__ = ["YolosConfig", "YOLOS_PRESETS", "YolosForObjectDetection", "YolosOutput", "build_yolos"]


def build_yolos(preset: str | None = None, **overrides: Any) -> YolosForObjectDetection:
    """``YolosForObjectDetection`` from a preset name (or none) with config overrides."""
    cfg = dict(YOLOS_PRESETS[preset]) if preset else {}
    cfg.update(overrides)
    return YolosForObjectDetection(YolosConfig.from_dict(cfg))


def _register() -> None:
    register_model("yolos")(yolos_factory(None, build_yolos))
    for name in YOLOS_PRESETS:
        register_model(name)(yolos_factory(name, build_yolos))


_register()
