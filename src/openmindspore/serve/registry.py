"""The predictor seam: the ``Predictor`` interface, the table of predictor *kinds*, and source resolution.

A predictor turns a batch of numpy inputs into numpy outputs (preprocess -> forward -> postprocess) and
declares its input/output ``TensorSpec``s (per-sample shapes; the batch dimension is implicit). The
server only ever sees this interface. This module owns the kind table (``register_predictor``) and
``MODEL_KINDS``; it knows no kind itself. A kind registers its loader, the options it accepts after
``?`` in a source (a pydantic model: a misspelled option gets a did-you-mean) and, optionally, which
files it serves::

    @register_predictor("detector", options=DetectorOptions, claims=detector_checkpoint)
    def _load_detector(rs: ResolvedSource) -> Predictor: ...

A kind may also ``prepare`` a resolved source where it is resolved (the driver, before anything is
deployed; no MindSpore): check its files and pin what every replica must load the same way, in
``ResolvedSource.details`` (e.g. the ``trained`` kind verifies the checkpoint's SHA-256, pins its path and
the run's signature). Replicas receive the prepared ``ResolvedSource`` and do not resolve it again.

    MODEL_KINDS["mymodel"] = "mykind"   # `oms train` run dirs whose config says model.name == "mymodel"

The built-in kinds register when ``openmindspore.serve`` is imported (``identity`` and ``trained`` in
``predictor.py``, ``detector`` in ``detector.py``). Another package adds a kind without any change here
by declaring an entry point in the group ``openmindspore.predictors`` whose module registers it; those
modules are imported on the first lookup.

A *source* is ``builtin:NAME[?...]`` (a kind registered with ``builtin=True``), a path some kind
``claims`` (e.g. a YOLOS ``MODEL.ckpt`` + ``MODEL.json``), or an ``oms train`` run directory or one of
its ``checkpoints/step_*.safetensors`` (kind ``MODEL_KINDS[model.name]``, default ``trained``).
``SOURCE?key=value&...`` passes options to the predictor.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from openmindspore.errors import ConfigError
from openmindspore.serve.protocol import TensorSpec, datatype_to_dtype
from openmindspore.validation import did_you_mean, validate

__all__ = [
    "ENTRY_POINT_GROUP",
    "InputError",
    "MODEL_KINDS",
    "NoOptions",
    "Predictor",
    "PredictorKind",
    "ResolvedSource",
    "load_predictor",
    "predictor_kinds",
    "register_predictor",
    "resolve_source",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "openmindspore.predictors"
Opts = TypeVar("Opts", bound=BaseModel)


class InputError(ValueError):
    """Raised by ``Predictor.predict`` when a request's data cannot be used (e.g. an undecodable image file):
    answered 400 with its message, to that request only (a batch that fails this way is run again request by
    request)."""


class Predictor(ABC):
    """Batch in, batch out. ``inputs``/``outputs`` give per-sample shapes (no batch dimension)."""

    kind: str = "abstract"
    platform: str = "mindspore"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs[name]``: ``(n, *spec.shape)`` -> ``outputs[name]``: ``(n, *spec.shape)``."""

    def warmup(self) -> None:
        """Run one zero sample through the model so the first request does not pay the first-call cost."""
        self.predict({s.name: np.zeros((1, *s.shape), dtype=datatype_to_dtype(s.datatype)) for s in self.inputs})

    def metadata(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "kind": self.kind,
            "inputs": [s.metadata() for s in self.inputs],
            "outputs": [s.metadata() for s in self.outputs],
        }


class NoOptions(BaseModel):
    """A kind that takes no ``?key=value`` options (any option is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model comes from: its ``kind``, run directory and checkpoint, and its validated options."""

    source: str
    kind: str
    run_dir: Path | None = None
    checkpoint: Path | None = None
    options: BaseModel = field(default_factory=NoOptions)
    details: dict[str, Any] = field(default_factory=dict)

    def options_as(self, cls: type[Opts]) -> Opts:
        """The options, typed as the kind's options model ``cls``."""
        if not isinstance(self.options, cls):
            raise TypeError(f"{self!r} has {type(self.options).__name__} options, not {cls.__name__}")
        return self.options

    def __repr__(self) -> str:
        return f"ResolvedSource({self.source!r}, kind={self.kind!r})"


Loader = Callable[[ResolvedSource], Predictor]
Prepare = Callable[[ResolvedSource], ResolvedSource]


@dataclass(frozen=True)
class PredictorKind:
    """A registered kind: ``load(resolved source) -> Predictor`` and its ``options`` model. It is reached as
    ``builtin:NAME`` (``builtin``), through the files it ``claims`` (``path -> checkpoint or None``), or
    through ``MODEL_KINDS`` for ``oms train`` run directories. ``prepare`` checks and pins a source where it
    is resolved (see the module doc)."""

    name: str
    load: Loader
    options: type[BaseModel] = NoOptions
    claims: Callable[[Path], Path | None] | None = None
    builtin: bool = False
    prepare: Prepare | None = None


#: model name (``model.name`` in a run's config) -> predictor kind. Unlisted models are served as ``trained``.
MODEL_KINDS: dict[str, str] = {}
_KINDS: dict[str, PredictorKind] = {}
_plugins_loaded = False


def register_predictor(
    kind: str,
    *,
    options: type[BaseModel] = NoOptions,
    claims: Callable[[Path], Path | None] | None = None,
    builtin: bool = False,
    prepare: Prepare | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator: ``loader(resolved_source) -> Predictor`` serves sources of ``kind`` (see the module doc)."""

    def deco(fn: Loader) -> Loader:
        _KINDS[kind] = PredictorKind(kind, fn, options, claims, builtin, prepare)
        return fn

    return deco


def _load_plugins() -> None:
    """Import the modules named by ``openmindspore.predictors`` entry points (once); each registers its kinds."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take the built-in kinds down
            log.warning("predictor plugin %s (%s) failed to load: %s", ep.name, ep.value, e)


def predictor_kinds() -> dict[str, PredictorKind]:
    """Every registered kind (built-in and from installed plugins), by name."""
    _load_plugins()
    return dict(_KINDS)


def _split(source: str) -> tuple[str, dict[str, str]]:
    """``"PATH?a=1&b=2"`` -> ``("PATH", {"a": "1", "b": "2"})``; an item without ``=`` is an error."""
    base, _, query = source.partition("?")
    opts: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError("model", source, "options as ?key=value&key=value", f"fix {item!r}")
        opts[key] = value
    return base, opts


def _run_dir_source(s: str, p: Path) -> tuple[Path, Path | None, str]:
    """``(run_dir, checkpoint or None, kind)`` for an ``oms train`` run directory or one of its checkpoints."""
    checkpoint = None
    if p.is_file():
        if p.suffix != ".safetensors" or p.parent.name != "checkpoints":
            raise ConfigError(
                "model",
                s,
                "a run directory, RUN/checkpoints/step_*.safetensors, or a YOLOS MODEL.ckpt with its MODEL.json",
                "pass the --out directory of `oms train` or one of its checkpoint files",
            )
        checkpoint, p = p, p.parent.parent
    if not p.exists():
        raise ConfigError("model", s, "an existing run directory or checkpoint file", "check the path")
    if not (p / "config.yaml").is_file():
        raise ConfigError(
            "model",
            s,
            "a run directory containing config.yaml (written by `oms train --out DIR`) "
            "or model.ckpt + model.json (a detection run)",
            "pass the --out directory of an earlier `oms train`",
        )
    import yaml

    cfg = yaml.safe_load((p / "config.yaml").read_text()) or {}
    model_name = str((cfg.get("model") or {}).get("name", ""))
    return p, checkpoint, MODEL_KINDS.get(model_name, "trained")


def resolve_source(source: str | Path) -> ResolvedSource:
    """Check (and ``prepare``) a source and its options without importing MindSpore; a ``ConfigError`` names
    what to fix."""
    s = str(source)
    kinds = predictor_kinds()
    base, raw_opts = _split(s)
    run_dir: Path | None = None
    checkpoint: Path | None = None
    if base.startswith("builtin:"):
        name = base[len("builtin:") :]
        builtins = sorted(k for k, v in kinds.items() if v.builtin)
        if name not in builtins:
            choices = ", ".join(f"builtin:{b}" for b in builtins)
            raise ConfigError(
                "model", s, f"a run directory, a checkpoint file, or one of {choices}", did_you_mean(name, builtins)
            )
        kind = name
    else:
        p = Path(base).expanduser()
        claimed = [(k.name, ckpt) for k in kinds.values() if k.claims and p.exists() and (ckpt := k.claims(p))]
        if claimed:
            kind, checkpoint = claimed[0]
            run_dir = checkpoint.parent
        else:
            run_dir, checkpoint, kind = _run_dir_source(s, p)
    k = _kind(kind)
    options = validate(k.options, raw_opts, where=f"options of {s!r}")
    rs = ResolvedSource(s, kind, run_dir, checkpoint, options)
    return k.prepare(rs) if k.prepare is not None else rs


def _kind(name: str) -> PredictorKind:
    kinds = predictor_kinds()
    if name not in kinds:
        fix = "register a loader with openmindspore.serve.register_predictor"
        raise ConfigError("model kind", name, f"one of {sorted(kinds)}", fix)
    return kinds[name]


def load_predictor(source: str | Path | ResolvedSource) -> Predictor:
    """Build the predictor for ``source`` (imports MindSpore for MindSpore models)."""
    rs = source if isinstance(source, ResolvedSource) else resolve_source(source)
    return _kind(rs.kind).load(rs)
