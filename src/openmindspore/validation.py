"""One way to validate configuration: pydantic models whose errors become one :class:`ConfigError`.

Every config the user or another layer hands over is a pydantic model (``extra="forbid"``) validated with
:func:`validate`: *all* problems are reported at once, each naming the field, the value and what was
expected, and a misspelled key gets a did-you-mean from the model's own fields::

    >>> validate(TrainConfig, {"batch_sise": 32, "epochs": 0})
    ConfigErrors: config has 2 problems: batch_sise=32 is invalid: expected a known field name; did you mean
    batch_size?; epochs=0 is invalid: expected greater than 0
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from openmindspore.errors import ConfigError

__all__ = ["ConfigErrors", "did_you_mean", "validate"]

M = TypeVar("M", bound=BaseModel)


class ConfigErrors(ConfigError):
    """Several bad values at once; ``problems`` holds each as a :class:`ConfigError`. The message lists
    them all on one line (the CLI prints it and exits 2); ``field``/``value``/``expected``/``fix`` are
    those of the first."""

    def __init__(self, where: str, problems: list[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.field, first.value, first.expected, first.fix)
        self.problems = problems
        self.args = (str(first),)
        if len(problems) > 1:
            self.args = (f"{where} has {len(problems)} problems: " + "; ".join(str(p) for p in problems),)


def did_you_mean(key: str, choices: Iterable[str]) -> str:
    """``"did you mean X?"`` for the closest of ``choices`` to ``key``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(key), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else ""


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested pydantic model that owns the field at ``loc[:-1]`` (for did-you-mean on nested keys)."""
    cur: type[BaseModel] | None = model
    for part in loc[:-1]:
        if cur is None or not isinstance(part, str) or part not in cur.model_fields:
            return None
        ann = cur.model_fields[part].annotation
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return cur


def _field_name(loc: tuple[Any, ...], prefix: str, names: Mapping[str, str]) -> str:
    """``("optimizer", "lr") -> "optimizer.lr"``; ``names`` renames a field (its dotted path, or its top-level
    part) as the user wrote it, e.g. ``batching.max_batch -> --max-batch`` for a command-line flag; pydantic's
    ``[key]`` marker is dropped."""
    if not loc:
        return prefix.rstrip(".") or "config"
    parts = [str(p) for p in loc if p != "[key]"]
    dotted = ".".join(parts)
    if dotted in names:
        return names[dotted]
    if parts[0] in names:
        return ".".join([names[parts[0]], *parts[1:]])
    return prefix + dotted


def _expected(msg: str) -> str:
    """pydantic's ``"Input should be greater than 0"`` -> ``"greater than 0"`` (read after "expected")."""
    for lead in ("Input should be ", "Input should "):
        if msg.startswith(lead):
            return msg[len(lead) :]
    return msg[0].lower() + msg[1:] if msg else "a valid value"


def _problem(
    model: type[BaseModel], err: Mapping[str, Any], prefix: str, where: str, names: Mapping[str, str]
) -> ConfigError:
    loc = tuple(err["loc"])
    field = _field_name(loc, prefix, names)
    value = err.get("input", "")
    if err["type"] == "extra_forbidden":
        owner = _model_at(model, loc)
        hint = did_you_mean(str(loc[-1]), owner.model_fields) if owner is not None else ""
        known = ", ".join(owner.model_fields) if owner is not None else ""
        fix = hint or (f"valid fields: {known}" if known else "remove it or check its spelling")
        return ConfigError(field, value, "a known field name", fix)
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a whole-model check: its message names the fields itself
        whole = ConfigError(field, "", msg)
        whole.args = (f"{where}: {msg}",)
        return whole
    expected = _expected(msg)
    if err["type"] == "literal_error":
        hint = did_you_mean(str(value), [str(x) for x in (err.get("ctx") or {}).get("expected", "").split("'")[1::2]])
        return ConfigError(field, value, expected, hint)
    return ConfigError(field, value, expected)


def validate(
    model: type[M], data: Any, where: str = "config", prefix: str = "", names: Mapping[str, str] | None = None
) -> M:
    """``model.model_validate(data)``; every validation problem becomes part of one :class:`ConfigErrors`.
    ``where`` names the whole thing in the message (``"config"``, ``"--batching"``); ``prefix`` is put
    before each field name (``"model."`` for a nested block validated on its own); ``names`` maps a
    field's dotted path to the name the user gave it (``{"batching.max_batch": "--max-batch"}`` for flags)."""
    if not isinstance(data, Mapping):
        raise ConfigError(where, data, f"a mapping of fields ({', '.join(model.model_fields)})")
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigErrors(where, [_problem(model, err, prefix, where, names or {}) for err in e.errors()]) from None
