"""Offline synthetic detection dataset: coloured shapes of several classes on cluttered backgrounds.

Every image has a smooth random colour gradient, random thin lines and speckle noise as clutter, and
1..``max_objects`` filled shapes (square, circle, triangle) of random colour and size that never
overlap. Boxes are the tight bounding boxes of the rasterised shapes, so annotations are exact.
Annotations are COCO detection format (category ids start at 1; use ``num_labels = len(CLASSES) + 1``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["CLASSES", "make_synthetic_detection", "write_dataset"]

#: the shapes drawn, in category-id order (id = index + 1)
Shape = Literal["square", "circle", "triangle"]
CLASSES: tuple[Shape, ...] = ("square", "circle", "triangle")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    t = (xx / max(w - 1, 1) * rng.uniform(-1, 1) + yy / max(h - 1, 1) * rng.uniform(-1, 1) + 1) / 2
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    for _ in range(rng.integers(3, 8)):  # clutter: thin random lines
        x0, y0, x1, y1 = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.clip(np.linspace(x0, x1, n).astype(int), 0, w - 1)
        ys = np.clip(np.linspace(y0, y1, n).astype(int), 0, h - 1)
        img[ys, xs] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 12, img.shape)
    return img


def _mask(kind: Shape, h: int, w: int, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "square":
        return (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    # upward triangle: apex at top, base at bottom
    top, bot = cy - r, cy + r
    frac = np.clip((yy - top) / (2 * r), 0, 1)
    return (yy >= top) & (yy <= bot) & (np.abs(xx - cx) <= frac * r)


def make_synthetic_detection(
    n_images: int,
    image_size: tuple[int, int] = (96, 128),
    max_objects: int = 3,
    min_size: int | None = None,
    max_size: int | None = None,
    seed: int = 0,
    first_image_id: int = 1,
) -> tuple[list[np.ndarray], dict]:
    """``n_images`` images ``[H, W, 3]`` uint8 and their COCO annotation dict (file names ``{id:06d}.png``).

    Object sizes (pixels) default to ``max_size = min(40, 0.6 * short side)``, ``min_size = min(14, max/2)``.
    """
    h, w = int(image_size[0]), int(image_size[1])
    max_size = int(max_size) if max_size is not None else max(8, min(40, int(0.6 * min(h, w))))
    min_size = int(min_size) if min_size is not None else max(4, min(14, max_size // 2))
    if n_images < 1 or max_objects < 1:
        raise ConfigError("synthetic", (n_images, max_objects), "n_images >= 1 and max_objects >= 1")
    if not 4 <= min_size <= max_size < min(h, w):
        raise ConfigError(
            "synthetic.object size", (min_size, max_size), f"4 <= min_size <= max_size < min(image_size)={min(h, w)}"
        )
    rng = np.random.default_rng(seed)
    images, img_recs, anns = [], [], []
    aid = 1
    for k in range(n_images):
        img_id = first_image_id + k
        img = _background(rng, h, w)
        placed: list[tuple[float, float, float]] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _try in range(20):
                r = rng.uniform(min_size, max_size) / 2
                cx, cy = rng.uniform(r, w - r - 1), rng.uniform(r, h - r - 1)
                if all((cx - px) ** 2 + (cy - py) ** 2 > (1.45 * (r + pr) + 1) ** 2 for px, py, pr in placed):
                    break
            else:
                continue
            cls = int(rng.integers(len(CLASSES)))
            m = _mask(CLASSES[cls], h, w, cx, cy, r, rng)
            color = rng.uniform(0, 255, 3)
            while np.abs(color - img[int(cy), int(cx)]).sum() < 150:  # visible against the background
                color = rng.uniform(0, 255, 3)
            img[m] = color
            ys, xs = np.nonzero(m)
            x0, y0 = int(xs.min()), int(ys.min())
            bw, bh = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            anns.append(
                {
                    "id": aid,
                    "image_id": img_id,
                    "category_id": cls + 1,
                    "bbox": [x0, y0, bw, bh],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                }
            )
            aid += 1
            placed.append((cx, cy, r))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        img_recs.append({"id": img_id, "file_name": f"{img_id:06d}.png", "height": h, "width": w})
    coco = {
        "images": img_recs,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)],
    }
    return images, coco


def write_dataset(out_dir: str | Path, images: list[np.ndarray], coco: dict) -> Path:
    """Write PNGs and ``annotations.json`` to ``out_dir``; returns the annotation path."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for img, rec in zip(images, coco["images"]):
        Image.fromarray(img).save(out / rec["file_name"])
    path = out / "annotations.json"
    path.write_text(json.dumps(coco))
    return path
