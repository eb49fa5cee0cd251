"""Dataset references: a registered name (``digits``) or a spec of the user's own files.

A spec is a mapping with a ``format`` (``npz``, ``csv``, ``imagefolder``, ``mindrecord``) and a
``path``; each format is a pydantic model (``extra="forbid"``). :func:`parse_dataset` validates a
spec, reports every problem at once, resolves relative paths against a base directory (the config
file's folder, else the current directory) and returns the normalised mapping (defaults filled in),
which is what a ``TrainConfig`` stores: plain JSON, the same in every process. Example::

    dataset: {format: csv, path: flowers.csv, label: species}
    dataset: {format: imagefolder, path: photos/, image_size: [32, 32]}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openmindspore.errors import ConfigError
from openmindspore.validation import ConfigErrors, did_you_mean, validate

if TYPE_CHECKING:
    from openmindspore.data.datasets import Dataset

__all__ = [
    "FORMATS",
    "format_loader",
    "register_format",
    "NpzData",
    "CsvData",
    "ImageFolderData",
    "MindRecordData",
    "parse_dataset",
    "dataset_label",
    "dataset_key",
    "spec_model",
]

Task = Literal["classification", "regression"]


class _Files(BaseModel):
    """Fields every file format has: where the data is and how to split it when it has no splits."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the training data (file or folder); relative to the config file")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share held out for validation when no val split")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share held out for testing when no test split")
    split_seed: int = Field(0, ge=0, description="seed of the train/val/test split (stratified for classes)")

    @model_validator(mode="after")
    def _fractions(self) -> _Files:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} leaves too little "
                "to train on; keep their sum below 0.9"
            )
        return self


class _SplitPaths(BaseModel):
    val_path: str | None = Field(None, description="a separate validation file/folder of the same format")
    test_path: str | None = Field(None, description="a separate test file/folder of the same format")


class _Image(BaseModel):
    image_size: tuple[int, int] | None = Field(None, description="[height, width] to resize every image to")
    channels: Literal[1, 3] | None = Field(None, description="1 (grey) or 3 (RGB); default: from the images")

    @model_validator(mode="before")
    @classmethod
    def _square(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("image_size"), int):
            data = {**data, "image_size": (data["image_size"], data["image_size"])}
        return data


class NpzData(_Files):
    """``numpy.savez`` arrays: features ``x`` and targets ``y`` (names configurable); optional
    ``{x}_val``/``{y}_val`` and ``{x}_test``/``{y}_test`` arrays are used as splits."""

    format: Literal["npz"]
    x: str = "x"
    y: str = "y"
    task: Task | None = Field(None, description="default: classification for integer y, else regression")
    standardize: bool = Field(True, description="scale features by the training split's mean and std")


class CsvData(_Files, _SplitPaths):
    """A table with a header row: one ``label`` column, feature columns (all others by default).
    Numeric columns are standardised; text columns are one-hot encoded; empty numeric cells get the
    training mean."""

    format: Literal["csv"]
    label: str = Field(description="the column to predict")
    features: list[str] | None = Field(None, description="feature columns (default: every other column)")
    task: Task = "classification"
    delimiter: str = Field(",", min_length=1, max_length=1)


class ImageFolderData(_Files, _SplitPaths, _Image):
    """One sub-folder per class holding PNG/JPEG/... images (read with Pillow)."""

    format: Literal["imagefolder"]


class MindRecordData(_Files, _SplitPaths, _Image):
    """A MindSpore MindRecord file (read through ``mindspore.dataset.MindDataset``): column ``x``
    holds numeric arrays or encoded images (bytes), column ``y`` the targets."""

    format: Literal["mindrecord"]
    x: str = "data"
    y: str = "label"
    task: Task | None = Field(None, description="default: classification for integer labels, else regression")


_MODELS: dict[str, type[BaseModel]] = {
    "npz": NpzData,
    "csv": CsvData,
    "imagefolder": ImageFolderData,
    "mindrecord": MindRecordData,
}
FORMATS: tuple[str, ...] = tuple(_MODELS)


_LOADERS: dict[str, Callable[[dict[str, Any]], Dataset]] = {}


def register_format(
    name: str, model: type[BaseModel], loader: Callable[[dict[str, Any]], Dataset] | None = None
) -> None:
    """Add a dataset format: its spec ``model`` (pydantic, ``extra="forbid"``, a ``format: Literal[name]``
    field) and, optionally, the ``loader(spec) -> Dataset`` that reads it (a higher layer may register the
    loader later, e.g. detection data read with a model's image processor). Class attribute
    ``path_fields`` of the model names further path fields resolved like ``path``."""
    _MODELS[name] = model
    if loader is not None:
        _LOADERS[name] = loader


def format_loader(fmt: str) -> Callable[[dict[str, Any]], Dataset] | None:
    """The registered loader of a format added with :func:`register_format` (None: a built-in file format)."""
    return _LOADERS.get(fmt)


def spec_model(fmt: str) -> type[BaseModel]:
    """The pydantic model of a format."""
    if fmt not in _MODELS:
        hint = did_you_mean(fmt, _MODELS)
        raise ConfigError("dataset.format", fmt, f"one of {', '.join(_MODELS)}", hint)
    return _MODELS[fmt]


def _resolve(p: str, base: Path) -> str:
    path = Path(p).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_dataset(value: Any, base_dir: str | Path | None = None) -> str | dict[str, Any]:
    """A registered dataset name (returned as is) or a validated, normalised file spec.

    Relative ``path``/``val_path``/``test_path`` are resolved against ``base_dir`` (default: the current
    directory). A string holding a JSON mapping (how specs travel where a hashable key is needed, see
    :func:`dataset_key`) is parsed first."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError("dataset", value, f"a dataset name or a JSON mapping ({e})") from None
    if isinstance(value, str):
        if Path(value).suffix.lower() in (".csv", ".npz", ".mindrecord") or "/" in value:
            fmt = Path(value).suffix.lower().lstrip(".") or "imagefolder"
            raise ConfigError(
                "dataset",
                value,
                "a registered dataset name or a mapping with format and path",
                f"write dataset: {{format: {fmt if fmt in _MODELS else 'csv'}, path: {value}"
                + (", label: COLUMN}" if fmt == "csv" else "}"),
            )
        return value
    if not isinstance(value, dict):
        raise ConfigError("dataset", value, "a registered dataset name or a mapping {format: ..., path: ...}")
    if "format" not in value:
        raise ConfigError(
            "dataset.format", None, f"one of {', '.join(_MODELS)}", "add format: csv (or npz, imagefolder, mindrecord)"
        )
    model = spec_model(str(value["format"]))
    try:
        spec = validate(model, value, where="dataset", prefix="dataset.")
    except ConfigErrors as e:  # a missing field: name it, not the whole mapping
        raise ConfigErrors(
            "dataset",
            [
                ConfigError(
                    p.field, None, f"a value ({_describe(model, p.field)})", f"add {p.field.split('.')[-1]}: ..."
                )
                if p.expected == "field required"
                else p
                for p in e.problems
            ],
        ) from None
    dumped = spec.model_dump(mode="json")
    data = {"format": dumped.pop("format"), **dumped}
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for key in ("path", "val_path", "test_path", *getattr(model, "path_fields", ())):
        if data.get(key):
            data[key] = _resolve(data[key], base)
    return data


def _describe(model: type[BaseModel], field: str) -> str:
    info = model.model_fields.get(field.split(".")[-1])
    return (info.description if info is not None and info.description else "required") or "required"


def dataset_label(ref: str | dict[str, Any]) -> str:
    """A short human name: the registered name, or the data file's name (``flowers.csv``)."""
    if isinstance(ref, str):
        return ref
    if not ref.get("path"):  # a generated dataset (e.g. synthetic_detection)
        return str(ref.get("format", "data"))
    return Path(str(ref["path"])).name or str(ref["path"])


def dataset_key(ref: str | dict[str, Any]) -> str:
    """A hashable, canonical string for a dataset reference (a name, or the spec as sorted JSON)."""
    return ref if isinstance(ref, str) else json.dumps(ref, sort_keys=True)
