"""Makers of small user data files for tests: a CSV table, an image folder, an npz and a MindRecord file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

SPECIES = ("setosa", "versicolor", "virginica")


def write_flowers_csv(path: Path, n: int = 90, seed: int = 0) -> Path:
    """Iris-like rows: 4 numeric features, a text column, a string label; one empty numeric cell."""
    rng = np.random.default_rng(seed)
    lines = ["sepal_length,sepal_width,petal_length,petal_width,soil,species"]
    for i in range(n):
        c = i % 3
        f = rng.normal([5.0 + c, 3.0, 1.5 + 2 * c, 0.3 + c], 0.3)
        cells = [f"{v:.2f}" for v in f]
        if i == 7:
            cells[1] = ""  # a missing value: filled with the training mean
        lines.append(",".join(cells) + f",{('sand', 'clay')[i % 2]},{SPECIES[c]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_image_folder(root: Path, per_class: int = 16, size: tuple[int, int] = (10, 12), seed: int = 0) -> Path:
    """RGB PNGs in ``root/<class>/``: each class a different dominant colour channel."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 120, (*size, 3), dtype=np.uint8)
            a[..., c] = rng.integers(180, 255, size, dtype=np.uint8)
            Image.fromarray(a).save(root / name / f"{i:03d}.png")
    return root


def write_npz(path: Path, n: int = 60, seed: int = 0, with_test: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 5)).astype(np.float32) + y[:, None]
    arrays = {"x": x, "y": y}
    if with_test:
        arrays.update(x_test=x[:9] + 0.1, y_test=y[:9])
    np.savez(path, **arrays)
    return path


def write_mindrecord(path: Path, n: int = 24, images: bool = True, seed: int = 0) -> Path:
    """``data`` (PNG bytes, or float32 [4] arrays) and ``label`` (int64) records."""
    from mindspore.mindrecord import FileWriter
    from PIL import Image

    rng = np.random.default_rng(seed)
    w = FileWriter(str(path), shard_num=1, overwrite=True)
    schema = {"data": {"type": "bytes"} if images else {"type": "float32", "shape": [4]}, "label": {"type": "int64"}}
    w.add_schema(schema, "test")
    rows = []
    for i in range(n):
        if images:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).save(buf, "PNG")
            rows.append({"data": buf.getvalue(), "label": i % 2})
        else:
            rows.append({"data": rng.normal(size=4).astype(np.float32), "label": i % 2})
    w.write_raw_data(rows)
    w.commit()
    return path


PROJECT_NETS = '''\
"""A user's own models: plain MindSpore cells, outside the openmindspore package."""

import mindspore.nn as nn
from mindspore import ops

from openmindspore.models import Dropout  # dropout keyed by (seed, step, sample): exact resume and recovery


class TinyNet(nn.Cell):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 16):
        super().__init__()
        self.hidden = nn.Dense(in_features, hidden)
        self.drop = Dropout(0.2)
        self.out = nn.Dense(hidden, num_classes)

    def construct(self, x):
        return self.out(self.drop(ops.relu(self.hidden(x))))


class SmallConvNet(nn.Cell):
    def __init__(self, in_channels: int, num_classes: int, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, pad_mode="same", has_bias=True)
        self.head = nn.Dense(width, num_classes)

    def construct(self, x):
        return self.head(ops.relu(self.conv(x)).mean(axis=(2, 3)))
'''

CSV_CONFIG = """\
dataset: {format: csv, path: flowers.csv, label: species}
model: {class_path: nets.TinyNet, init_args: {hidden: 16}}
optimizer: {name: adam, lr: 0.02}
batch_size: 16
steps: 10
seed: 1
log_every: 1
checkpoint_every: 2
"""

IMAGES_CONFIG = """\
dataset: {format: imagefolder, path: photos}
model: {class_path: nets.SmallConvNet}
optimizer: {name: adam, lr: 0.02}
batch_size: 12
steps: 8
seed: 1
checkpoint_every: 2
"""


def make_project(root: Path) -> Path:
    """A user project outside the package: ``nets.py``, ``flowers.csv``, ``photos/<class>/*.png`` and configs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nets.py").write_text(PROJECT_NETS)
    write_flowers_csv(root / "flowers.csv")
    write_image_folder(root / "photos", per_class=12)
    (root / "csv.yaml").write_text(CSV_CONFIG)
    (root / "images.yaml").write_text(IMAGES_CONFIG)
    return root
