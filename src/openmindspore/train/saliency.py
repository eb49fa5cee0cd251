"""Saliency maps of the current model, and the run's cache of them for key-feature augmentation.

Maps are ``[N, H, W]`` float32, larger = more important, computed in **inference mode** (batch-norm running
statistics, no dropout), so a sample's map depends only on the sample and the parameters:

* ``gradient``: ``|d loss / d x|`` (cross-entropy of the true label), the largest over channels;
* ``gradcam`` (the spec-driven CNN): Grad-CAM at the last convolution block (its ReLU'd output ``A``,
  weights = the spatial mean of ``d logit_y / d A``), ReLU'd and resized bilinearly to the input size.

Rows go through in fixed chunks (the last one zero-padded), so every process computes bitwise the same
maps for the same parameters, whatever the world size.

:class:`SaliencyTracker` owns the run's cache: one map per training row, the refresh period it belongs to
and the step it was computed at; it is part of ``TrainState`` (``arrays``). Refresh policy (``saliency``
in the config): with ``source: refresh`` every process recomputes all rows' maps at the first step of
every ``every``-th epoch (exact for any world size, resume and recovery); with ``source: backward`` the
maps are computed once, then each training step's input gradient (training mode, of the augmented input,
shifted back) replaces its samples' maps: no extra pass, single process only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from openmindspore.errors import ConfigError
from openmindspore.train.building import build_model
from openmindspore.train.config import SaliencyConfig, TrainConfig

if TYPE_CHECKING:
    from openmindspore.data import Dataset
    from openmindspore.train.tasks import Task

__all__ = [
    "saliency_maps",
    "gradient_maps",
    "gradcam_maps",
    "SaliencyTracker",
    "MapsModel",
    "with_input_grad",
    "reinitialized_model",
    "resize_bilinear",
]

INPUT_GRAD_MODELS = ("cnn", "mlp")  # built-in models whose first layer computes d/dx only when asked


def with_input_grad(cfg: TrainConfig, weight_grad: bool = True) -> TrainConfig:
    """``cfg`` whose built-in CNN/MLP also computes the gradient of its input (saliency needs it);
    ``weight_grad=False``: and skips its parameters' gradients (an input-only model: the maps' twin)."""
    if cfg.model.get("name") not in INPUT_GRAD_MODELS:
        return cfg
    extra = {} if weight_grad else {"weight_grad": False}
    return cfg.model_copy(update={"model": {**cfg.model, "input_grad": True, **extra}})


class MapsModel:
    """The cell a run's maps come from: the training model itself, or (built-in CNN/MLP trained without
    their input gradient) a twin built to compute it and nothing else (no parameter gradients: the maps'
    pass costs ~a third less, the input gradient is bitwise the same), given the training parameters
    before each use."""

    def __init__(self, cfg: TrainConfig, data: Dataset, task: Task, model: nn.Cell, given: bool) -> None:
        self.cfg, self.data, self.task, self.model = cfg, data, task, model
        self.needs_twin = not given and cfg.model.get("name") in INPUT_GRAD_MODELS and not model.input_grad
        self._twin: nn.Cell | None = None

    def synced(self) -> nn.Cell:
        if not self.needs_twin:
            return self.model
        if self._twin is None:
            self._twin = build_model(with_input_grad(self.cfg, weight_grad=False), self.data, self.task)
        own = {p.name: p for p in self.model.get_parameters()}
        for p in self._twin.get_parameters():
            ops.assign(p, own[p.name].value())
        return self._twin


def reinitialized_model(cfg: TrainConfig, data: Dataset, task: Task) -> nn.Cell:
    """The run's architecture freshly initialised with ``seed + 1`` (the saliency sanity check)."""
    if "python_object" in cfg.model:
        raise ConfigError("model", cfg.model["python_object"], "a model built from the config", "")
    return build_model(with_input_grad(cfg).model_copy(update={"seed": cfg.seed + 1}), data, task)


def _chunks(x: np.ndarray, y: np.ndarray, chunk: int):
    """``(start, count, x_chunk, y_chunk)`` with every chunk padded to ``chunk`` rows."""
    for start in range(0, len(x), chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        n = len(xs)
        if n < chunk:
            xs = np.concatenate([xs, np.zeros((chunk - n, *xs.shape[1:]), xs.dtype)])
            ys = np.concatenate([ys, np.zeros((chunk - n, *ys.shape[1:]), ys.dtype)])
        yield start, n, Tensor(np.ascontiguousarray(xs)), Tensor(ys)


def _maybe_jit(fn: Callable, compiled: bool) -> Callable:
    return ms.jit(fn) if compiled else fn


def _fns(model: nn.Cell) -> dict[tuple[int, str, bool], Callable]:
    """The model's compiled saliency functions, kept on the model (they go when it goes)."""
    fns: dict[tuple[int, str, bool], Callable] = model.__dict__.setdefault("_oms_saliency_fns", {})
    return fns


def gradient_maps(
    model: nn.Cell, loss_cell: nn.Cell, x: np.ndarray, y: np.ndarray, chunk: int = 256, compiled: bool = True
) -> np.ndarray:
    """``max_c |d loss(model(x), y) / d x|`` per row: ``[N, H, W]`` float32 (inference mode)."""
    fns, key = _fns(model), (id(loss_cell), "gradient", compiled)
    if key not in fns:

        def loss(xb: Tensor, yb: Tensor) -> Tensor:
            return loss_cell(model(xb), yb)

        fns[key] = _maybe_jit(ms.grad(loss, grad_position=0), compiled)
    fn = fns[key]
    model.set_train(False)
    out = np.empty((len(x), *x.shape[2:]), np.float32)
    for start, n, xs, ys in _chunks(x, y, chunk):
        out[start : start + n] = np.abs(fn(xs, ys).asnumpy()[:n]).max(axis=1)
    return out


def resize_bilinear(maps: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[N, h0, w0] -> [N, h, w]``, bilinear with half-pixel centres (``align_corners=False``), float32."""
    n, h0, w0 = maps.shape

    def axis(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(out) + 0.5) * (size / out) - 0.5, 0, size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        return lo, hi, (pos - lo)

    y0, y1, fy = axis(h, h0)
    x0, x1, fx = axis(w, w0)
    m = maps.astype(np.float64)
    rows = m[:, y0] * (1 - fy)[None, :, None] + m[:, y1] * fy[None, :, None]
    return (rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx).astype(np.float32)


def _gradcam_split(model: nn.Cell) -> int:
    """Index of the last body cell of the last convolution block (the conv and the activations after it)."""
    from openmindspore.models.cnn import CNN

    if not isinstance(model, CNN):
        raise ConfigError(
            "saliency.method", "gradcam", "the spec-driven CNN (model: {name: cnn})", "use method: gradient"
        )
    cells = list(model.body.cell_list)
    convs = [i for i, c in enumerate(cells) if "Conv" in type(c).__name__]
    if not convs:
        raise ConfigError("saliency.method", "gradcam", "a CNN with a conv layer", "use method: gradient")
    k = convs[-1]
    while k + 1 < len(cells) and type(cells[k + 1]).__name__ in ("Identity", "ReLU", "GELU", "Tanh", "SiLU", "ELU"):
        k += 1
    return k


def gradcam_maps(model: nn.Cell, x: np.ndarray, y: np.ndarray, chunk: int = 256, compiled: bool = True) -> np.ndarray:
    """Grad-CAM of the true class at the last conv block, resized to the input: ``[N, H, W]`` float32."""
    fns, key = _fns(model), (0, "gradcam", compiled)
    if key not in fns:
        k = _gradcam_split(model)
        cells = list(model.body.cell_list)
        head, tail = cells[: k + 1], cells[k + 1 :]
        channels_last = bool(model.channels_last)

        def forward_head(xb: Tensor) -> Tensor:
            a = model.to_cl(xb) if channels_last else xb
            for cell in head:
                a = cell(a)
            return a

        def class_score(a: Tensor, yb: Tensor) -> Tensor:
            out = a
            for cell in tail:
                out = cell(out)
            return ops.gather_elements(out, 1, yb.reshape(-1, 1)).sum()

        grad = ms.grad(class_score, grad_position=0)

        def cam(xb: Tensor, yb: Tensor) -> Tensor:
            a = forward_head(xb)
            g = grad(a, yb)
            if channels_last:  # [N, h, w, C]
                return ops.relu((a * g.mean(axis=(1, 2), keep_dims=True)).sum(axis=3))
            return ops.relu((a * g.mean(axis=(2, 3), keep_dims=True)).sum(axis=1))

        fns[key] = _maybe_jit(cam, compiled)
    fn = fns[key]
    model.set_train(False)
    out = np.empty((len(x), *x.shape[2:]), np.float32)
    for start, n, xs, ys in _chunks(x, y.astype(np.int32), chunk):
        coarse = fn(xs, ys).asnumpy()[:n]
        out[start : start + n] = resize_bilinear(coarse, x.shape[2], x.shape[3])
    return out


def saliency_maps(
    model: nn.Cell,
    loss_cell: nn.Cell,
    x: np.ndarray,
    y: np.ndarray,
    method: str = "gradient",
    chunk: int = 256,
    compiled: bool = True,
) -> np.ndarray:
    """The maps of rows ``x`` (labels ``y``) by ``method`` (``gradient`` or ``gradcam``), ``[N, H, W]``."""
    if x.ndim != 4:
        raise ConfigError("saliency", list(x.shape[1:]), "image inputs [C, H, W]", "saliency maps are for images")
    if method == "gradcam":
        return gradcam_maps(model, x, y, chunk, compiled)
    return gradient_maps(model, loss_cell, x, y, chunk, compiled)


class SaliencyTracker:
    """The run's saliency cache and its refresh policy (see the module docstring). ``model()`` returns the
    cell that computes the maps, with the current training parameters (:meth:`MapsModel.synced`)."""

    def __init__(self, cfg: SaliencyConfig, model: Callable[[], nn.Cell], loss_cell: nn.Cell, compiled: bool) -> None:
        self.cfg, self.model, self.loss_cell, self.compiled = cfg, model, loss_cell, compiled
        self.maps: np.ndarray | None = None
        self.period = -1  # refresh period (epoch // every) the maps belong to; -1: none yet
        self.step = -1  # step whose parameters computed them
        self.refreshes = 0  # passes made by this process (not state)

    def due(self, epoch: int) -> bool:
        if self.maps is None:
            return True
        return self.cfg.source == "refresh" and epoch // self.cfg.every != self.period

    def before_step(self, epoch: int, step: int, x: np.ndarray, y: np.ndarray) -> None:
        """Refresh every training row's map (``x``, ``y``) with the current parameters when due."""
        if not self.due(epoch):
            return
        self.maps = saliency_maps(self.model(), self.loss_cell, x, y, self.cfg.method, self.cfg.chunk, self.compiled)
        self.period, self.step = epoch // self.cfg.every, step
        self.refreshes += 1

    def after_step(self, rows: np.ndarray, dx: np.ndarray, offsets: np.ndarray) -> None:
        """``source: backward``: the training step's input gradient ``dx [n, C, H, W]`` of training rows
        ``rows``, moved back by the augmentation's ``offsets``, becomes their maps."""
        from openmindspore.data.augment._common import shift_images

        assert self.maps is not None
        self.maps[rows] = shift_images(np.abs(dx).max(axis=1), -np.asarray(offsets), 0.0)

    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.maps is None:
            return {}
        maps = self.maps.copy() if self.cfg.source == "backward" else self.maps  # refresh: replaced, never written
        return {"saliency/maps": maps, "saliency/meta": np.array([self.period, self.step], np.int64)}

    def load_arrays(self, arrays: dict[str, Any]) -> None:
        maps = arrays.get("saliency/maps")
        if maps is None:
            self.maps, self.period, self.step = None, -1, -1
            return
        self.maps = np.array(maps, dtype=np.float32, copy=True)
        self.period, self.step = (int(v) for v in np.asarray(arrays["saliency/meta"]))
