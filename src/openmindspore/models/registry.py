"""Model registry and user models.

* ``create_model(name, **cfg)`` builds any registered ``nn.Cell`` (``{name: cnn}``).
* ``create_user_model(class_path, init_args, provided)`` builds the user's own ``nn.Cell`` subclass from its
  import path, Lightning-style (``{class_path: mypkg.nets.TinyNet, init_args: {hidden: 16}}``), and
  ``build_object(obj, provided)`` a Python cell or factory given directly. ``provided`` holds what the
  data knows (``num_classes``, ``input_shape``, ``in_features``, ``in_channels``): each is passed when the
  constructor takes a parameter of that name and ``init_args`` does not set it.

Every failure is a :class:`ConfigError` naming the field, the value and the fix: a module that does not
import (with the import error), a name the module lacks, a class that is not an ``nn.Cell``, arguments the
constructor rejects (with its signature).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mindspore import nn

from openmindspore.errors import ConfigError

__all__ = ["register_model", "create_model", "list_models", "import_object", "create_user_model", "build_object"]

log = logging.getLogger(__name__)

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
        raise ConfigError("model.name", name, f"one of {list_models()}", "or give class_path: your.module.YourCell")
    try:
        return _MODELS[name](**cfg)
    except TypeError as e:  # unexpected keyword argument etc.
        raise ConfigError(f"model ({name})", cfg, "arguments accepted by this model", str(e)) from None


def import_object(path: str, field: str = "model.class_path") -> Any:
    """``"pkg.module.Name"`` -> the object. The module is imported from ``sys.path`` (the caller puts the
    user's code directories there; Ray workers get them shipped by the engine)."""
    module_name, _, attr = str(path).rpartition(".")
    if not module_name or not attr:
        raise ConfigError(field, path, "a dotted import path module.ClassName", "e.g. class_path: nets.TinyNet")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to see, in one line
        detail = f"{type(e).__name__}: {e}".splitlines()[0]
        raise ConfigError(
            field,
            path,
            "an importable module.ClassName",
            f"importing {module_name!r} failed ({detail}); run from the folder holding it or pass --code-dir",
        ) from None
    if not hasattr(module, attr):
        public = sorted(n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_"))
        raise ConfigError(field, path, f"a name defined in {module_name} (its classes: {public})")
    return getattr(module, attr)


def _call(fn: Callable[..., Any], args: Mapping[str, Any], provided: Mapping[str, Any], what: str) -> Any:
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    kwargs = dict(args)
    if sig is not None:
        params = sig.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key, value in provided.items():
            if key in params and key not in kwargs and not takes_any:
                kwargs[key] = value
        try:
            sig.bind(**kwargs)
        except TypeError as e:
            raise ConfigError(
                "model.init_args", dict(args), f"arguments {what}{sig} accepts ({e})", "fix init_args"
            ) from None
    try:
        return fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's constructor failed: one line, traceback at debug level
        log.debug("constructing %s failed", what, exc_info=True)
        raise ConfigError(
            "model.init_args",
            dict(args),
            f"arguments {what} accepts",
            f"constructing it raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
        ) from None


def _check_cell(obj: Any, path: str) -> nn.Cell:
    if not isinstance(obj, nn.Cell):
        raise ConfigError(
            "model.class_path",
            path,
            "a mindspore.nn.Cell subclass (or a function returning one)",
            f"{path} gave a {type(obj).__name__}",
        )
    return obj


def create_user_model(class_path: str, init_args: Mapping[str, Any], provided: Mapping[str, Any]) -> nn.Cell:
    """Import ``class_path`` and build it with ``init_args`` (plus the ``provided`` values it asks for)."""
    obj = import_object(class_path)
    if isinstance(obj, type) and not issubclass(obj, nn.Cell):
        raise ConfigError(
            "model.class_path",
            class_path,
            "a mindspore.nn.Cell subclass",
            f"{obj.__name__} derives from {', '.join(b.__name__ for b in obj.__mro__[1:-1]) or 'object'} only",
        )
    if not callable(obj):
        raise ConfigError("model.class_path", class_path, "a mindspore.nn.Cell subclass (or a factory function)")
    return _check_cell(_call(obj, init_args, provided, class_path), class_path)


def build_object(obj: Any, provided: Mapping[str, Any]) -> nn.Cell:
    """A model given in Python: an ``nn.Cell`` (used as is) or a factory called with what it asks for."""
    if isinstance(obj, nn.Cell):
        return obj
    if callable(obj):
        name = getattr(obj, "__qualname__", type(obj).__name__)
        return _check_cell(_call(obj, {}, provided, name), name)
    raise ConfigError("model", type(obj).__name__, "an nn.Cell or a function returning one")
