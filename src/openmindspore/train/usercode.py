"""Where the user's model code lives, for this process and for the engine's worker processes.

A ``model: {class_path: nets.TinyNet}`` is imported from the *code path*: by default the folder holding
the module among the config file's folder and the current directory; ``--code-dir DIR`` (repeatable)
chooses the folders instead. The code path is put on ``sys.path`` here and published in the
``OMS_CODE_PATH`` environment variable (``os.pathsep``-separated absolute folders): the engine ships the
Python modules of those folders to its workers with its own mechanism (Ray ``runtime_env``
``py_modules``, see ``engine/ray_engine.py``), child processes inherit it, and a run directory records it
(``code.json``) so ``--resume``, ``oms eval`` and serving find the code again.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["CODE_PATH_ENV", "code_path", "set_code_path", "choose_code_path", "restore_code_path"]

CODE_PATH_ENV = "OMS_CODE_PATH"


def code_path() -> list[str]:
    """The folders currently published in ``OMS_CODE_PATH``."""
    return [p for p in os.environ.get(CODE_PATH_ENV, "").split(os.pathsep) if p]


def set_code_path(dirs: Sequence[str | Path]) -> list[str]:
    """Put ``dirs`` first on ``sys.path`` and publish them in ``OMS_CODE_PATH``; returns them (absolute)."""
    absolute = list(dict.fromkeys(str(Path(d).resolve()) for d in dirs))
    for d in reversed(absolute):
        if d in sys.path:
            sys.path.remove(d)
        sys.path.insert(0, d)
    if absolute:
        os.environ[CODE_PATH_ENV] = os.pathsep.join(absolute)
    return absolute


def _holds(folder: Path, top: str) -> bool:
    return (folder / f"{top}.py").is_file() or (folder / top).is_dir()


def choose_code_path(
    model: dict[str, Any], config_path: str | Path | None, code_dirs: Sequence[str] | None
) -> list[str]:
    """Decide and apply the code path for a model config (nothing for registered models).

    ``code_dirs`` given (``--code-dir``): exactly those folders (each must exist). Otherwise the first of
    (the config file's folder, the current directory) that holds the top-level module of ``class_path``;
    none when the module is installed rather than found there."""
    if code_dirs:
        for d in code_dirs:
            if not Path(d).is_dir():
                raise ConfigError("--code-dir", d, "an existing folder holding your model's Python module")
        return set_code_path(code_dirs)
    class_path = model.get("class_path") if isinstance(model, dict) else None
    if not isinstance(class_path, str):
        return []
    top = class_path.split(".")[0]
    candidates = ([Path(config_path).resolve().parent] if config_path else []) + [Path.cwd()]
    for folder in candidates:
        if _holds(folder, top):
            return set_code_path([folder])
    return []


def restore_code_path(run_dir: str | Path, code_dirs: Sequence[str] | None = None) -> list[str]:
    """For a run being resumed, evaluated or served: ``code_dirs`` if given, else the folders recorded in
    its ``code.json`` that still exist (a code path already published wins over both)."""
    if code_dirs:
        return choose_code_path({}, None, code_dirs)
    if code_path():
        return set_code_path(code_path())
    p = Path(run_dir) / "code.json"
    if not p.is_file():
        return []
    saved = json.loads(p.read_text()).get("code_path", [])
    return set_code_path([d for d in saved if Path(d).is_dir()])
