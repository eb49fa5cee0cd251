"""Tiny detection configs for tests: a small YOLOS on a few generated synthetic-shape images, and a COCO
annotation folder written at test time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: a YOLOS small enough to train a few steps in seconds on CPU
TINY_YOLOS: dict[str, Any] = {
    "name": "yolos",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 8,
    "num_detection_tokens": 4,
    "use_mid_position_embeddings": False,
    "pos_init": "sincos",
}
IMAGE = (32, 48)


def tiny_config(steps: int = 6, hflip: bool = True, **changes: Any) -> dict[str, Any]:
    """A training config of the detection task (synthetic shapes, 16 training images, batch 4)."""
    cfg: dict[str, Any] = {
        "dataset": {
            "format": "synthetic_detection",
            "train_images": 16,
            "val_images": 6,
            "image_size": list(IMAGE),
            "max_objects": 2,
            "hflip": hflip,
        },
        "model": dict(TINY_YOLOS),
        "optimizer": {"name": "adamw", "lr": 1e-3, "warmup_steps": 1, "schedule": "cosine"},
        "batch_size": 4,
        "steps": steps,
        "log_every": 1,
        "checkpoint_every": 2,
    }
    cfg.update(changes)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_coco(folder: Path, n: int = 8, seed: int = 5, size: tuple[int, int] = IMAGE) -> Path:
    """``n`` synthetic images as PNGs and their ``annotations.json`` (COCO detection format) in ``folder``."""
    from openmindspore.models.yolos.synthetic import make_synthetic_detection, write_dataset

    images, coco = make_synthetic_detection(n, size, max_objects=2, seed=seed)
    return write_dataset(folder, images, coco)
