"""Load a YOLOS detector from a checkpoint and run it on images (used by ``oms detect`` / ``eval-detection``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["load_detector", "detect", "draw_detections"]


def load_detector(
    model_name: str, weights: str | Path | None, processor_overrides: dict[str, Any] | None = None
) -> tuple[Any, Any, dict]:
    """``(model, processor, meta)``. The config comes from ``<weights>.json`` (written by ``oms convert-hf``
    and fine-tuning) when present, otherwise from the registered preset ``model_name``."""
    import mindspore as ms

    from openmindspore.models._checkpoint_io import load_checkpoint
    from openmindspore.models.registry import create_model
    from openmindspore.models.yolos.model import YolosForObjectDetection
    from openmindspore.models.yolos.processor import YolosImageProcessor

    if ms.get_context("mode") != ms.PYNATIVE_MODE:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    meta: dict[str, Any] = {}
    if weights is not None:
        side = Path(weights).with_suffix(".json")
        if side.is_file():
            try:
                meta = json.loads(side.read_text())
            except ValueError as e:
                raise ConfigError("weights config", str(side), "valid JSON", str(e)) from None
    if meta.get("config"):
        cfg = {k: v for k, v in meta["config"].items()}
        model = create_model("yolos", **cfg)
    else:
        model = create_model(model_name)
    if not isinstance(model, YolosForObjectDetection):
        raise ConfigError("--model", model_name, "a YOLOS detector (yolos, yolos-tiny, yolos-small, yolos-base)")
    if weights is not None:
        load_checkpoint(model, weights)
    proc_kw = dict(meta.get("processor") or {})
    proc_kw.update({k: v for k, v in (processor_overrides or {}).items() if v is not None})
    return model, YolosImageProcessor.from_dict(proc_kw), meta


def detect(
    model: Any,
    processor: Any,
    images: Sequence[np.ndarray],
    threshold: float = 0.5,
    batch_size: int = 4,
    compiled: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Per image ``{"scores", "labels", "boxes" (xyxy pixels of the original image)}``. ``compiled``: run
    the detector as ``ms.jit`` graphs, one compiled per distinct resized image size and then reused (pays
    off when many images share few sizes)."""
    from mindspore import Tensor

    from openmindspore.models.vit.compiled import compiled_forward

    model.set_train(False)
    forward = compiled_forward(model) if compiled else model
    out: list[dict[str, np.ndarray]] = []
    for s in range(0, len(images), batch_size):
        chunk = list(images[s : s + batch_size])
        sizes = [im.shape[:2] for im in chunk]
        for im, hw in zip(chunk, sizes):  # one image per forward: each keeps its own resized extent
            enc = processor([im])
            logits, boxes = forward(Tensor(np.asarray(enc["pixel_values"], np.float32)))[:2]
            out += processor.post_process_object_detection(logits.asnumpy(), boxes.asnumpy(), threshold, [hw])
    return out


def draw_detections(image: np.ndarray, result: dict[str, np.ndarray], id2label: dict | None = None) -> Any:
    """A PIL image with the boxes and ``label score`` captions drawn."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.asarray(image, np.uint8))
    d = ImageDraw.Draw(im)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    for s, lab, b in zip(result["scores"], result["labels"], result["boxes"]):
        c = palette[int(lab) % len(palette)]
        d.rectangle([float(v) for v in b], outline=c, width=2)
        name = (id2label or {}).get(int(lab), (id2label or {}).get(str(int(lab)), str(int(lab))))
        d.text((float(b[0]) + 2, float(b[1]) + 1), f"{name} {float(s):.2f}", fill=c)
    return im
