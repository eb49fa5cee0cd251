"""Object focus: where a trained model looks, and evaluation on another registered dataset.

* :func:`pointing_game`: the share of images whose saliency peak falls inside the object's box;
* :func:`mass_in_box`: the mean share of each map's saliency mass inside the box;
* :func:`rank_correlation`: per-image Spearman correlation of two sets of maps; the model-randomization
  sanity check (Adebayo et al., 2018) compares the trained model's maps with those of a re-initialised
  model of the same architecture (seed + 1): a map that explains the model must change, i.e. the
  correlation should be low (< 0.3).

:func:`evaluate_dataset` evaluates a run on the split of another registered dataset with the same input
shape (``oms eval RUN --dataset NAME``), with the focus metrics when that dataset has boxes in ``meta``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata

from openmindspore.data import load_dataset
from openmindspore.errors import ConfigError
from openmindspore.train.saliency import reinitialized_model, saliency_maps

if TYPE_CHECKING:
    from openmindspore.train.trainer import Trainer

__all__ = ["pointing_game", "mass_in_box", "rank_correlation", "focus_metrics", "evaluate_dataset"]


def _inside(rows: np.ndarray, cols: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return (rows >= boxes[:, 0]) & (rows < boxes[:, 2]) & (cols >= boxes[:, 1]) & (cols < boxes[:, 3])


def pointing_game(maps: np.ndarray, boxes: np.ndarray) -> float:
    """Share of maps ``[N, H, W]`` whose maximum (the first, in row-major order) lies in its box
    ``(top, left, bottom, right)`` (bottom/right exclusive)."""
    rows, cols = np.divmod(maps.reshape(len(maps), -1).argmax(1), maps.shape[2])
    return float(_inside(rows, cols, np.asarray(boxes)).mean())


def mass_in_box(maps: np.ndarray, boxes: np.ndarray) -> float:
    """Mean over maps of (saliency inside the box) / (all saliency); a zero map counts 0."""
    h, w = maps.shape[1:]
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    boxes = np.asarray(boxes)
    inside = (
        (rr[None] >= boxes[:, 0, None, None])
        & (rr[None] < boxes[:, 2, None, None])
        & (cc[None] >= boxes[:, 1, None, None])
        & (cc[None] < boxes[:, 3, None, None])
    )
    m = np.abs(maps.astype(np.float64))
    total = m.sum(axis=(1, 2))
    share = np.where(total > 0, (m * inside).sum(axis=(1, 2)) / np.maximum(total, 1e-300), 0.0)
    return float(share.mean())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each pair of maps ``a[i]``, ``b[i]`` (ties ranked by their average)."""
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.maximum(den, 1e-300), 0.0)


def focus_metrics(
    trainer: Trainer,
    x: np.ndarray,
    y: np.ndarray,
    boxes: np.ndarray,
    method: str = "gradient",
    randomization: bool = True,
) -> dict[str, float]:
    """Pointing game and mass in box of the trained model's maps of ``x`` (labels ``y``); with
    ``randomization``, the mean Spearman correlation with the maps of a re-initialised model."""
    chunk = trainer.cfg.saliency.chunk
    maps = saliency_maps(trainer.saliency_model(), trainer.loss_cell, x, y, method, chunk, trainer.compiled)
    out = {"pointing_game": pointing_game(maps, boxes), "mass_in_box": mass_in_box(maps, boxes)}
    if randomization:
        other = reinitialized_model(trainer.cfg, trainer.data, trainer.task_impl)
        rnd = saliency_maps(other, trainer.loss_cell, x, y, method, chunk, trainer.compiled)
        out["randomization_spearman"] = float(rank_correlation(maps, rnd).mean())
    return out


def evaluate_dataset(
    trainer: Trainer, name: str, split: str = "test", method: str = "gradient", focus: bool = True
) -> dict[str, Any]:
    """The run's metrics on ``split`` of registered dataset ``name`` (same input shape and classes), plus
    the focus metrics when ``name`` has boxes for that split."""
    data = load_dataset(name)
    own, theirs = tuple(trainer.data.input_shape), tuple(data.input_shape)
    if own != theirs:
        raise ConfigError(
            "--dataset",
            name,
            f"a dataset with inputs of shape {list(own)} (the run's {trainer.data.name})",
            f"{name} has inputs of shape {list(theirs)}",
        )
    if data.task != trainer.task or data.num_classes != trainer.data.num_classes:
        raise ConfigError(
            "--dataset",
            name,
            f"a {trainer.task} dataset with {trainer.data.num_classes} classes",
            f"{name} is {data.task} with {data.num_classes} classes",
        )
    x, y = data.split(split)
    result: dict[str, Any] = {"dataset": name, "split": split, "step": trainer.step, **trainer.evaluate(x=x, y=y)}
    boxes = data.meta.get(f"{split}_boxes")
    if focus and boxes is not None and x.ndim == 4:
        result.update(focus_metrics(trainer, x, y, boxes, method))
    return result
