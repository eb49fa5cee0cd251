"""Model registry: ``create_model(name, **cfg)`` builds any registered ``nn.Cell``."""

from __future__ import annotations

from collections.abc import Callable

from mindspore import nn

from openmindspore.errors import ConfigError

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable[..., nn.Cell]] = {}


def register_model(name: str) -> Callable:
    """Decorator: register a factory ``fn(**cfg) -> nn.Cell`` under ``name``."""

    def deco(fn: Callable[..., nn.Cell]) -> Callable[..., nn.Cell]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **cfg) -> nn.Cell:
    """Build model ``name``. Unknown names and bad arguments raise :class:`ConfigError`."""
    if name not in _MODELS:
        raise ConfigError("model.name", name, f"one of {list_models()}")
    try:
        return _MODELS[name](**cfg)
    except TypeError as e:  # unexpected keyword argument etc.
        raise ConfigError(f"model ({name})", cfg, "arguments accepted by this model", str(e)) from None
