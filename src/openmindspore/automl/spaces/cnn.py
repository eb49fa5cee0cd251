"""CNN space: a grammar whose specs are exactly the layer lists of :mod:`openmindspore.models.cnn`.

Walk: a feature extractor of up to ``max_blocks`` blocks (conv with channels/kernel/stride and a
post-op: relu | batchnorm+relu | gelu | none; max-pool; avg-pool; dropout), then either the end
(the classifier head is appended by the model) or a head (flatten or global pooling) with up to two
dense layers (units, activation, dropout). The ``down`` counter bounds the number of 2x
down-samplings (stride-2 conv or pooling) by the input size, so every spec has a valid shape.

Evaluation trains the spec for a fixed number of steps (the same budget as the hand-designed
``DEFAULT_CNN`` baseline; no early stopping) in a fresh process (:func:`openmindspore.train.isolated.
train_isolated`: a MindSpore crash fails the trial, never the search) and reports validation and test
accuracy and loss.
"""

from __future__ import annotations

from typing import Any

from openmindspore.automl.grammar import Grammar
from openmindspore.automl.spaces.base import SearchSpace
from openmindspore.errors import ConfigError

__all__ = ["CNNSpace", "cnn_grammar", "max_downsamples", "DEFAULT_TRAIN"]

#: Training budget of every candidate (and of the DEFAULT_CNN baseline), overridable via options.
DEFAULT_TRAIN: dict[str, Any] = {"steps": 300, "batch_size": 64, "lr": 1e-3, "optimizer": "adam"}


def max_downsamples(input_shape: tuple[int, ...]) -> int:
    """How many 2x down-samplings keep the feature map at least 2x2 (28 -> 3, 8 -> 2)."""
    s, n = min(input_shape[1:]), 0
    while s >= 4:
        s //= 2
        n += 1
    return n


def cnn_grammar(
    input_shape: tuple[int, ...] = (1, 28, 28), max_blocks: int = 6, max_convs: int = 4, max_dense: int = 2
) -> Grammar:
    """The CNN grammar for images of ``input_shape`` (C, H, W), as data."""
    if len(input_shape) != 3:
        raise ConfigError(
            "input_shape",
            tuple(input_shape),
            "(channels, height, width) for the cnn space",
            "use an image dataset such as mnist5k, digits or synthetic",
        )
    block = [
        {"id": "conv", "next": "conv.channels", "emit": {"type": "conv"}, "count": ["blocks", "convs"]},
        {"id": "maxpool", "next": "block", "emit": {"type": "maxpool", "kernel": 2}, "count": ["blocks", "down"]},
        {"id": "avgpool", "next": "block", "emit": {"type": "avgpool", "kernel": 2}, "count": ["blocks", "down"]},
        {"id": "dropout", "next": "dropout.rate", "emit": {"type": "dropout"}, "count": ["blocks"]},
        {"id": "flatten", "next": "head", "emit": {"type": "flatten"}},
        {"id": "globalpool", "next": "head", "emit": {"type": "globalpool", "mode": "avg"}},
        {"id": "end", "next": None},
    ]
    states = {
        "block": block,
        "conv.channels": [{"id": str(c), "next": "conv.kernel", "set": {"channels": c}} for c in (16, 32, 64)],
        "conv.kernel": [{"id": str(k), "next": "conv.stride", "set": {"kernel": k}} for k in (3, 5)],
        "conv.stride": [
            {"id": "1", "next": "conv.post", "set": {"stride": 1}},
            {"id": "2", "next": "conv.post", "set": {"stride": 2}, "count": ["down"]},
        ],
        "conv.post": [
            {"id": "relu", "next": "block", "emit": {"type": "relu"}},
            {"id": "bn_relu", "next": "block", "emit": [{"type": "batchnorm"}, {"type": "relu"}]},
            {"id": "gelu", "next": "block", "emit": {"type": "gelu"}},
            {"id": "none", "next": "block"},
        ],
        "dropout.rate": [{"id": str(r), "next": "block", "set": {"rate": r}} for r in (0.1, 0.25, 0.5)],
        "head": [
            {"id": "dense", "next": "dense.units", "emit": {"type": "dense"}, "count": ["dense"]},
            {"id": "end", "next": None},
        ],
        "dense.units": [{"id": str(u), "next": "dense.act", "set": {"units": u}} for u in (64, 128, 256)],
        "dense.act": [
            {"id": "relu", "next": "dense.dropout", "emit": {"type": "relu"}},
            {"id": "gelu", "next": "dense.dropout", "emit": {"type": "gelu"}},
        ],
        "dense.dropout": [
            {"id": "0", "next": "head"},
            {"id": "0.25", "next": "head", "emit": {"type": "dropout", "rate": 0.25}},
            {"id": "0.5", "next": "head", "emit": {"type": "dropout", "rate": 0.5}},
        ],
    }
    return Grammar.from_dict(
        {
            "name": "cnn",
            "start": "block",
            "states": states,
            "counters": {
                "blocks": max_blocks,
                "convs": max_convs,
                "down": max_downsamples(tuple(input_shape)),
                "dense": max_dense,
            },
        }
    )


class CNNSpace(SearchSpace):
    """CNNs for an image dataset (default ``mnist5k``; or the user's images: ``dataset`` may be a spec such
    as ``{format: imagefolder, path: ...}``, passed as its JSON string so the space stays hashable, see
    :func:`openmindspore.data.dataset_key`); objective: validation accuracy.

    Options: ``steps``, ``batch_size``, ``lr``, ``optimizer`` (training budget per candidate, see
    :data:`DEFAULT_TRAIN`), ``max_blocks``, ``max_convs``, ``max_dense``."""

    name = "cnn"
    objective = "accuracy"
    budget_option = "steps"
    default_budget = int(DEFAULT_TRAIN["steps"])

    def __init__(self, dataset: str = "mnist5k", **options: Any) -> None:
        from openmindspore.data import dataset_label, load_dataset, parse_dataset

        super().__init__(dataset, **options)
        ds = load_dataset(dataset)
        if ds.task != "classification" or len(ds.input_shape) != 3:
            raise ConfigError(
                "dataset",
                dataset_label(parse_dataset(dataset)),
                f"an image classification dataset for the cnn space (its input shape is {list(ds.input_shape)})",
                "use mnist5k, digits, synthetic or your images: {format: imagefolder, path: ...}",
            )
        self.input_shape, self.num_classes = ds.input_shape, ds.num_classes
        unknown = set(options) - set(DEFAULT_TRAIN) - {"max_blocks", "max_convs", "max_dense"}
        if unknown:
            raise ConfigError(
                "space options",
                sorted(unknown),
                f"options among {sorted(DEFAULT_TRAIN)} + max_blocks, max_convs, max_dense",
            )
        self.train_opts = {**DEFAULT_TRAIN, **{k: v for k, v in options.items() if k in DEFAULT_TRAIN}}
        self.grammar = cnn_grammar(
            ds.input_shape,
            int(options.get("max_blocks", 6)),
            int(options.get("max_convs", 4)),
            int(options.get("max_dense", 2)),
        )

    def train_config(self, layers: list[dict], seed: int) -> dict[str, Any]:
        """The ``openmindspore.train`` config used for ``layers`` (also for the DEFAULT_CNN baseline)."""
        from openmindspore.data import parse_dataset

        o = self.train_opts
        return {
            "dataset": parse_dataset(self.dataset),
            "model": {"name": "cnn", "layers": layers},
            "optimizer": {"name": o["optimizer"], "lr": float(o["lr"])},
            "batch_size": int(o["batch_size"]),
            "steps": int(o["steps"]),
            "seed": int(seed),
        }

    def evaluate(self, spec: list[dict], seed: int) -> dict[str, dict[str, float]]:
        from openmindspore.models.cnn import validate_spec
        from openmindspore.train import TrainConfig
        from openmindspore.train.isolated import train_isolated

        validate_spec(spec, self.input_shape, self.num_classes)  # fail fast, naming the layer
        cfg = TrainConfig.model_validate(self.train_config(spec, seed % (2**31)))
        res = train_isolated(cfg.model_dump(mode="json"))
        if res["status"] != "ok":
            raise RuntimeError(f"training the candidate failed after {res['attempts']} attempt(s): {res['error']}")
        m = res["metrics"]
        return {"val": m["val"], "test": m["test"], "train": {"final_loss": m["train"]["final_loss"]}}
