"""Tasks: the seam between the one trainer and each kind of learning problem (see ``tasks.base``).

``get_task(name)`` returns the task a dataset's ``task`` names; :func:`register_task` adds one without
touching the trainer (as ``detection`` is added here).
"""

from __future__ import annotations

from openmindspore.errors import ConfigError
from openmindspore.train.tasks.base import Batch, Task
from openmindspore.train.tasks.classification import Classification
from openmindspore.train.tasks.detection import Detection
from openmindspore.train.tasks.regression import Regression

__all__ = ["Batch", "Task", "Classification", "Detection", "Regression", "get_task", "register_task", "list_tasks"]

_TASKS: dict[str, type[Task]] = {"classification": Classification, "regression": Regression}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ConfigError("task", name, f"one of {list_tasks()}")
    return _TASKS[name]()


register_task(Detection)
