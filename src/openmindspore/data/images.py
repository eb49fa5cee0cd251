"""Image data (``format: imagefolder``, and encoded images in MindRecord files): listing a class-per-folder
tree, checking sizes and channels, decoding with Pillow into ``uint8 [N, C, H, W]``, and fitting the
per-channel statistics of the image :class:`~openmindspore.data.preprocess.Preprocessor`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.data.preprocess import Preprocessor
from openmindspore.errors import ConfigError

__all__ = ["IMAGE_SUFFIXES", "list_imagefolder", "image_preprocessor", "decode_images", "fit_images", "folder_parts"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def list_imagefolder(root: str | Path, field: str = "dataset.path") -> tuple[list[Path], list[str]]:
    """Image files under ``root/<class>/`` (sorted) and their class (folder) names."""
    r = Path(root)
    if not r.is_dir():
        raise ConfigError(field, str(root), "an existing folder with one sub-folder of images per class")
    paths: list[Path] = []
    labels: list[str] = []
    for d in sorted(p for p in r.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        paths += files
        labels += [d.name] * len(files)
    if not paths:
        raise ConfigError(
            field,
            str(root),
            "a folder with one sub-folder per class holding images (" + ", ".join(IMAGE_SUFFIXES) + ")",
        )
    return paths, labels


def _open(source: Any) -> Any:
    from PIL import Image

    try:
        return Image.open(io.BytesIO(bytes(source)) if isinstance(source, (bytes, np.bytes_)) else source)
    except OSError as e:
        raise ConfigError("image", str(source)[:120], "a readable image (PNG, JPEG, ...)", str(e)) from None


def _name(source: Any, i: int) -> str:
    return f"{Path(source).parent.name}/{Path(source).name}" if isinstance(source, (str, Path)) else f"record {i}"


def image_preprocessor(
    sources: Sequence[Any], classes: list[str] | None, spec: dict[str, Any], task: str = "classification"
) -> Preprocessor:
    """Channels and size for these images (headers only: Pillow opens lazily): ``spec.channels`` or
    3 unless every image is grey; ``spec.image_size`` or the images' common size (mixed sizes need it)."""
    channels, size = spec.get("channels"), spec.get("image_size")
    first: tuple[str, tuple[int, int]] | None = None
    grey = True
    for i, s in enumerate(sources):
        with _open(s) as im:
            grey = grey and im.mode in _GREY_MODES
            hw = (im.height, im.width)
        if size is None:
            if first is None:
                first = (_name(s, i), hw)
            elif hw != first[1]:
                raise ConfigError(
                    "dataset.image_size",
                    None,
                    f"[height, width] to resize to: the images differ in size ({first[0]} is "
                    f"{first[1][0]}x{first[1][1]}, {_name(s, i)} is {hw[0]}x{hw[1]})",
                    f"add image_size: [{first[1][0]}, {first[1][1]}] to the dataset",
                )
    c = int(channels) if channels else (1 if grey else 3)
    h, w = (int(size[0]), int(size[1])) if size else first[1] if first else (0, 0)
    return Preprocessor(
        kind="image",
        task=task,
        input_shape=[c, h, w],
        class_names=classes,
        image_size=[h, w],
        channels=c,
        source_format=str(spec.get("format", "")),
    )


def decode_images(pre: Preprocessor, sources: Sequence[Any]) -> np.ndarray:
    """``uint8 [N, C, H, W]`` at the preprocessor's size and channels."""
    out = np.empty((len(sources), *pre.input_shape), np.uint8)
    for i, s in enumerate(sources):
        out[i] = pre.read_image(s)
    return out


def fit_images(pre: Preprocessor, train: np.ndarray) -> None:
    """Per-channel mean and std of the training images scaled to [0, 1]."""
    x = train.astype(np.float64) / 255.0
    axes = (0, *range(2, x.ndim))
    std = x.std(axis=axes)
    pre.mean = [float(v) for v in x.mean(axis=axes)]
    pre.std = [float(v) if v > 0 else 1.0 for v in std]


def folder_parts(spec: dict[str, Any]) -> tuple[Preprocessor, dict[str, tuple[np.ndarray, np.ndarray] | None]]:
    """Preprocessor (size/channels/classes; statistics fitted later on the training split) and the
    decoded splits ``(uint8 [N, C, H, W], class names [N])`` of an image folder."""
    paths, labels = list_imagefolder(spec["path"])
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigError(
            "dataset.path",
            spec["path"],
            f"a folder with at least 2 class sub-folders (it has only {classes[0]!r})",
            "add a folder per class",
        )
    pre = image_preprocessor(paths, classes, spec)
    parts: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
        "train": (decode_images(pre, paths), np.asarray(labels, dtype=object)),
        "val": None,
        "test": None,
    }
    for split in ("val", "test"):
        if spec.get(f"{split}_path"):
            p, lab = list_imagefolder(spec[f"{split}_path"], f"dataset.{split}_path")
            parts[split] = (decode_images(pre, p), np.asarray(lab, dtype=object))
    return pre, parts
