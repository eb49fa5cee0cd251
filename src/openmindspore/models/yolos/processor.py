"""YOLOS image pre- and post-processing in numpy, equal to Hugging Face's slow (PIL/numpy) processor.

Pre-processing (per image): resize keeping the aspect ratio so the short side is ``shortest_edge`` unless
the long side would exceed ``longest_edge``, then floor both sides to a multiple of 16 (YOLOS's rule);
bilinear resampling is done by Pillow on uint8 exactly as the reference; rescale by 1/255 (in float64,
then float32), normalise with the ImageNet mean/std, and pad the batch bottom/right with zeros to the
largest size, returning a ``pixel_mask`` (1 = real pixel). COCO-detection annotations are converted to
``class_labels`` and normalised ``(cx, cy, w, h)`` boxes the same way.

Post-processing: softmax over classes, drop the last ("no object") class, take the best class per
query, convert ``cxcywh`` to ``xyxy`` in pixels of ``target_sizes`` and keep ``score > threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.validation import ConfigErrors, did_you_mean

__all__ = [
    "YolosImageProcessor",
    "get_size_with_aspect_ratio",
    "load_image",
    "center_to_corners",
    "corners_to_center",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def get_size_with_aspect_ratio(
    hw: tuple[int, int], size: int, max_size: int | None = None, mod_size: int = 16
) -> tuple[int, int]:
    """Output ``(height, width)``: short side ``size`` (long side capped at ``max_size``), floored to ``mod_size``."""
    height, width = hw
    raw_size = None
    if max_size is not None:
        mn, mx = float(min(height, width)), float(max(height, width))
        if mx / mn * size > max_size:
            raw_size = max_size * mn / mx
            size = int(round(raw_size))
    if width < height:
        ow = size
        oh = int(raw_size * height / width) if raw_size is not None else int(size * height / width)
    elif (height <= width and height == size) or (width <= height and width == size):
        oh, ow = height, width
    else:
        oh = size
        ow = int(raw_size * width / height) if raw_size is not None else int(size * width / height)
    if mod_size:
        ow, oh = ow - ow % mod_size, oh - oh % mod_size
    return oh, ow


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``[H, W, 3]`` uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise ConfigError("image", str(path), "a readable image file (PNG/JPEG/...)", str(e)) from None


def corners_to_center(b: np.ndarray) -> np.ndarray:
    """``[N, 4]`` xyxy -> cxcywh."""
    x0, y0, x1, y1 = b.T
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def center_to_corners(b: np.ndarray) -> np.ndarray:
    """``[..., 4]`` cxcywh -> xyxy."""
    cx, cy, w, h = np.moveaxis(b, -1, 0)
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def _to_chw_uint8_or_float(image: Any) -> np.ndarray:
    """PIL image or ``[H, W, C]`` array -> ``[C, H, W]`` array (dtype kept)."""
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(image)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ConfigError(
            "image.shape", a.shape, "[height, width, channels] with 1, 3 or 4 channels", "pass PIL images or HWC arrays"
        )
    return np.moveaxis(a, -1, 0)


def _pil_resize(chw: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize through Pillow as the reference does (uint8 round trip for [0,1] floats)."""
    from PIL import Image

    hwc = np.moveaxis(chw, 0, -1)
    rescaled = False
    if hwc.dtype != np.uint8:
        if np.allclose(hwc, hwc.astype(int)):
            if hwc.min() < 0 or hwc.max() > 255:
                raise ConfigError("image values", (float(hwc.min()), float(hwc.max())), "in [0, 255] or [0, 1]")
        elif hwc.min() >= 0 and hwc.max() <= 1:
            hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
            rescaled = True
        else:
            raise ConfigError("image values", (float(hwc.min()), float(hwc.max())), "in [0, 255] or [0, 1]")
    hwc = hwc.astype(np.uint8)
    if hwc.shape[-1] == 1:
        hwc = hwc[..., 0]
    out = np.array(Image.fromarray(hwc).resize((hw[1], hw[0]), resample=Image.Resampling.BILINEAR))
    if out.ndim == 2:
        out = out[..., None]
    out = np.moveaxis(out, -1, 0)
    if rescaled:
        out = (out.astype(np.float64) * (1 / 255)).astype(np.float32)
    return out


@dataclass
class YolosImageProcessor:
    """Numpy YOLOS processor; defaults equal Hugging Face ``YolosImageProcessor``."""

    shortest_edge: int = 800
    longest_edge: int = 1333
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: Sequence[float] = field(default=IMAGENET_MEAN)
    image_std: Sequence[float] = field(default=IMAGENET_STD)
    do_pad: bool = True
    do_convert_annotations: bool = True

    def __post_init__(self) -> None:
        if self.shortest_edge < 16 or self.longest_edge < self.shortest_edge:
            raise ConfigError(
                "processor.size", (self.shortest_edge, self.longest_edge), "16 <= shortest_edge <= longest_edge"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "processor") -> YolosImageProcessor:
        """From our own keys (the ``processor`` block of a ``model.json``); every unknown key is reported,
        with a did-you-mean."""
        known = [f.name for f in fields(cls)]
        bad = [
            ConfigError(f"{where}.{k}", v, "a known field name", did_you_mean(k, known) or f"valid: {', '.join(known)}")
            for k, v in d.items()
            if k not in known
        ]
        if bad:
            raise ConfigErrors(where, bad)
        return cls(**d)

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> YolosImageProcessor:
        """From a Hugging Face ``preprocessor_config.json`` dict."""
        size = d.get("size", {}) or {}
        kw: dict[str, Any] = {
            k: d[k]
            for k in (
                "do_resize",
                "do_rescale",
                "rescale_factor",
                "do_normalize",
                "image_mean",
                "image_std",
                "do_pad",
                "do_convert_annotations",
            )
            if k in d
        }
        if "shortest_edge" in size:
            kw["shortest_edge"] = int(size["shortest_edge"])
        if "longest_edge" in size:
            kw["longest_edge"] = int(size["longest_edge"])
        return cls(**kw)

    # ---- pre-processing -------------------------------------------------------------------------
    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        out = get_size_with_aspect_ratio(hw, self.shortest_edge, self.longest_edge)
        if min(out) < 1:
            raise ConfigError(
                "image size",
                hw,
                f"an aspect ratio that keeps both sides >= 16 after resizing to "
                f"shortest_edge={self.shortest_edge}, longest_edge={self.longest_edge} and flooring "
                f"to a multiple of 16 (got {out})",
                "raise longest_edge or crop the image",
            )
        return out

    def _prepare_annotation(self, target: dict, hw: tuple[int, int]) -> dict[str, np.ndarray]:
        h, w = hw
        anns = [a for a in target.get("annotations", []) if a.get("iscrowd", 0) == 0]
        classes = np.asarray([a["category_id"] for a in anns], dtype=np.int64)
        area = np.asarray([a["area"] for a in anns], dtype=np.float32)
        iscrowd = np.asarray([a.get("iscrowd", 0) for a in anns], dtype=np.int64)
        boxes = np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clip(min=0, max=w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(min=0, max=h)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        return {
            "image_id": np.asarray([target["image_id"]], dtype=np.int64),
            "class_labels": classes[keep],
            "boxes": boxes[keep],
            "area": area[keep],
            "iscrowd": iscrowd[keep],
            "orig_size": np.asarray([int(h), int(w)], dtype=np.int64),
        }

    def preprocess(self, images: Any, annotations: dict | list[dict] | None = None) -> dict[str, Any]:
        """Images (PIL or ``[H, W, C]`` arrays) -> ``pixel_values [B, C, H, W]`` float32,
        ``pixel_mask [B, H, W]`` int64 and, with COCO annotations, ``labels`` (one dict per image:
        ``class_labels [n]``, ``boxes [n, 4]`` normalised cxcywh, ``area``, ``iscrowd``, ``orig_size``,
        ``size``)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        if isinstance(annotations, dict):
            annotations = [annotations]
        if annotations is not None and len(annotations) != len(images):
            raise ConfigError("annotations", len(annotations), f"one per image ({len(images)})")
        out_imgs, out_anns = [], []
        for i, image in enumerate(images):
            img = _to_chw_uint8_or_float(image)
            hw = (int(img.shape[1]), int(img.shape[2]))
            ann = self._prepare_annotation(annotations[i], hw) if annotations is not None else None
            if self.do_resize:
                new_hw = self.output_size(hw)
                img = _pil_resize(img, new_hw)
                if ann is not None:
                    rh, rw = float(new_hw[0]) / float(hw[0]), float(new_hw[1]) / float(hw[1])
                    ann["boxes"] = ann["boxes"] * np.asarray([rw, rh, rw, rh], dtype=np.float32)
                    ann["area"] = ann["area"] * (rw * rh)
                    ann["size"] = np.asarray(new_hw, dtype=np.int64)
            if self.do_rescale:
                img = (img.astype(np.float64) * self.rescale_factor).astype(np.float32)
            if self.do_normalize:
                if not np.issubdtype(img.dtype, np.floating):
                    img = img.astype(np.float32)
                mean = np.asarray(self.image_mean, dtype=img.dtype)
                std = np.asarray(self.image_std, dtype=img.dtype)
                img = ((img.T - mean) / std).T
            if ann is not None:
                ann.setdefault("size", np.asarray(hw, dtype=np.int64))
                if self.do_convert_annotations:
                    h, w = img.shape[1:]
                    ann["boxes"] = corners_to_center(ann["boxes"]) / np.asarray([w, h, w, h], dtype=np.float32)
            out_imgs.append(img)
            out_anns.append(ann)
        result: dict[str, Any] = {}
        if self.do_pad:
            ph = max(im.shape[1] for im in out_imgs)
            pw = max(im.shape[2] for im in out_imgs)
            masks = []
            for k, im in enumerate(out_imgs):
                h, w = im.shape[1:]
                mask = np.zeros((ph, pw), dtype=np.int64)
                mask[:h, :w] = 1
                masks.append(mask)
                if (h, w) != (ph, pw):
                    out_imgs[k] = np.pad(im, ((0, 0), (0, ph - h), (0, pw - w)), mode="constant", constant_values=0)
                    ann = out_anns[k]
                    if ann is not None:
                        if self.do_convert_annotations:
                            ann["boxes"] = ann["boxes"] * np.asarray([w / pw, h / ph, w / pw, h / ph])
                        ann["size"] = np.asarray((ph, pw), dtype=np.int64)
            result["pixel_mask"] = np.stack(masks)
        shapes = {im.shape for im in out_imgs}
        result["pixel_values"] = np.stack(out_imgs) if len(shapes) == 1 else out_imgs
        if annotations is not None:
            result["labels"] = [ann for ann in out_anns if ann is not None]  # one per image
        return result

    __call__ = preprocess

    # ---- post-processing ------------------------------------------------------------------------
    @staticmethod
    def post_process_object_detection(
        logits: np.ndarray,
        pred_boxes: np.ndarray,
        threshold: float = 0.5,
        target_sizes: Sequence[tuple[int, int]] | np.ndarray | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """``logits [B, K, C+1]``, ``pred_boxes [B, K, 4]`` (cxcywh in [0, 1]) -> per image
        ``{"scores" [n], "labels" [n], "boxes" [n, 4] xyxy}`` with ``score > threshold``; boxes in pixels
        of ``target_sizes`` ``(height, width)`` when given."""
        logits = np.asarray(logits, dtype=np.float32)
        boxes = center_to_corners(np.asarray(pred_boxes, dtype=np.float32))
        if target_sizes is not None:
            if len(target_sizes) != len(logits):
                raise ConfigError("target_sizes", len(target_sizes), f"one (height, width) per image ({len(logits)})")
            ts = np.asarray(target_sizes, dtype=np.float32)
            scale = np.stack([ts[:, 1], ts[:, 0], ts[:, 1], ts[:, 0]], axis=1)
            boxes = boxes * scale[:, None, :]
        z = logits - logits.max(-1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(-1, keepdims=True)
        scores, labels = prob[..., :-1].max(-1), prob[..., :-1].argmax(-1)
        out = []
        for s, lab, b in zip(scores, labels, boxes):
            keep = s > threshold
            out.append({"scores": s[keep], "labels": lab[keep].astype(np.int64), "boxes": b[keep]})
        return out
