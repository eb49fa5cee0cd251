"""Where a served run's own model code (``model: {class_path: pkg.mod.Net}``) is found: driver and replicas.

Driver (:func:`code_folders`, where the source is prepared; the user's code is not imported there): the
published code path (``oms serve --code-dir DIR``, ``$OMS_CODE_PATH``) or else the folders the run recorded
(``RUN/code.json``) that still exist, or else the current directory when it holds the module. The top-level
module of ``class_path`` must be in one of them or be installed: otherwise one ``ConfigError`` that names
``--code-dir``, before anything starts. ``oms serve`` publishes these folders before Ray starts, so the engine
ships their modules to every Ray process — the Serve model replicas too — as ``runtime_env`` ``py_modules``,
exactly as training ships them to its workers (``engine/ray_engine.py``).

Replica (:func:`use_code_folders`): a module shipped that way (or installed) is imported as is; otherwise
(e.g. the Python ``Server`` started before the code path was published, on one machine) the folders are
appended to ``sys.path``, after anything shipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["CODE_PATH_ENV", "code_folders", "publish_code_folders", "use_code_folders"]

#: the published code path (``os.pathsep``-separated folders), as ``openmindspore.train.usercode`` sets it and
#: the engine reads it when Ray starts (read here without importing ``train``, which imports MindSpore)
CODE_PATH_ENV = "OMS_CODE_PATH"


def _published() -> list[str]:
    return [p for p in os.environ.get(CODE_PATH_ENV, "").split(os.pathsep) if p]


def publish_code_folders(folders: Sequence[str], flag: str = "--code-dir") -> list[str]:
    """Driver side, before Ray starts: publish ``folders`` (absolute) so the engine ships their modules to
    every Ray process. Each must exist (``ConfigError`` naming ``flag``)."""
    for d in folders:
        if not Path(d).is_dir():
            raise ConfigError(flag, d, "an existing folder holding your model's Python module")
    absolute = list(dict.fromkeys(str(Path(d).resolve()) for d in folders))
    if absolute:
        os.environ[CODE_PATH_ENV] = os.pathsep.join(absolute)
    return absolute


def _top(class_path: str) -> str:
    return class_path.split(".")[0]


def _holds(folder: Path, top: str) -> bool:
    return (folder / f"{top}.py").is_file() or (folder / top).is_dir()


def _findable(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def code_folders(run_dir: Path, model: dict[str, Any]) -> list[str] | None:
    """The folders a run's ``model.class_path`` is imported from (None: not a user model). Driver side."""
    class_path = model.get("class_path")
    if not isinstance(class_path, str):
        return None
    saved = run_dir / "code.json"
    recorded = [str(d) for d in json.loads(saved.read_text()).get("code_path", [])] if saved.is_file() else []
    folders = _published() or [d for d in recorded if Path(d).is_dir()]
    top = _top(class_path)
    if any(_holds(Path(d), top) for d in folders):
        return folders
    if _holds(Path.cwd(), top):
        return [*folders, str(Path.cwd())]
    if _findable(top):
        return folders  # installed: every process of this environment imports it
    where = f"the folders this run recorded ({', '.join(recorded)})" if recorded else "the current directory"
    raise ConfigError(
        "model.class_path",
        class_path,
        f"an importable module {top!r}: in {where}, in --code-dir, or installed",
        f"pass --code-dir DIR, the folder that holds {top}.py (or the {top}/ package) now",
    )


def use_code_folders(class_path: str, folders: Sequence[str]) -> None:
    """Replica side: make ``class_path``'s module importable (shipped or installed modules win)."""
    if _findable(_top(class_path)):
        return
    for d in folders:
        if d not in sys.path and Path(d).is_dir():
            sys.path.append(d)
    importlib.invalidate_caches()
