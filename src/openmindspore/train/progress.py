"""A rich progress bar for training loops (stderr, so ``--json`` output on stdout stays clean)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["step_progress"]


class _Bar:
    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._p, self._t = progress, task

    def update(self, step: int, loss: float, samples_per_s: float, info: str = "") -> None:
        if self._p is not None and self._t is not None:
            self._p.update(self._t, completed=step, loss=loss, sps=samples_per_s, info=info)


@contextmanager
def step_progress(total: int, start: int = 0, title: str = "train", disable: bool = False) -> Iterator[_Bar]:
    """Progress bar with loss, throughput and ETA; a no-op when ``disable``."""
    if disable:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[sps]:.0f} samples/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        task = progress.add_task(title, total=total, completed=start, loss=float("nan"), sps=0.0, info="")
        yield _Bar(progress, task)
