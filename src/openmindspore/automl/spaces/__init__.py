"""Search spaces: ``cnn``, ``sklearn-classifier``, ``sklearn-regressor``, ``nb201``."""

from __future__ import annotations

import functools
import json
from typing import Any

from openmindspore.automl.spaces.base import SearchSpace
from openmindspore.errors import ConfigError

__all__ = ["SearchSpace", "SPACES", "DEFAULT_DATASETS", "make_space", "space_cached"]

#: space name -> "module:class" (imported lazily: the cnn space pulls in MindSpore)
SPACES: dict[str, str] = {
    "cnn": "openmindspore.automl.spaces.cnn:CNNSpace",
    "sklearn-classifier": "openmindspore.automl.spaces.sklearn:SklearnClassifierSpace",
    "sklearn-regressor": "openmindspore.automl.spaces.sklearn:SklearnRegressorSpace",
    "nb201": "openmindspore.automl.spaces.nb201:NB201Space",
}
DEFAULT_DATASETS: dict[str, str] = {
    "cnn": "mnist5k",
    "sklearn-classifier": "digits",
    "sklearn-regressor": "diabetes",
    "nb201": "cifar10",
}


def make_space(name: str, dataset: str | None = None, **options: Any) -> SearchSpace:
    """Build a search space by name; ``dataset`` defaults to :data:`DEFAULT_DATASETS`."""
    if name not in SPACES:
        raise ConfigError("space", name, f"one of {sorted(SPACES)}")
    import importlib

    mod, cls = SPACES[name].split(":")
    return getattr(importlib.import_module(mod), cls)(dataset or DEFAULT_DATASETS[name], **options)


@functools.lru_cache(maxsize=8)
def _cached(name: str, dataset: str, options_json: str) -> SearchSpace:
    return make_space(name, dataset, **json.loads(options_json))


def space_cached(name: str, dataset: str, options: dict[str, Any]) -> SearchSpace:
    """A per-process cached space (workers evaluate many trials of the same space)."""
    return _cached(name, dataset, json.dumps(options, sort_keys=True))
