"""Building a YOLOS detector from a run's model spec: the trainer's data-derived arguments, and how it starts.

The registered names (``yolos``, ``yolos-tiny``, ...) build through :func:`yolos_factory`, which accepts what
the trainer passes every registered model (``input_shape`` of one sample -> ``num_channels`` and
``image_size``; ``num_classes`` -> ``num_labels``; ``seed``), each unless the spec sets it, and two ways to
start:

* ``init_weights: PATH``: load a checkpoint (``oms convert-hf`` output; strict: names and shapes must match);
* ``pos_init: sincos``: a model trained from scratch starts with 2-D sine-cosine patch position embeddings
  (MAE-style) instead of small random ones, which gives the detection tokens usable coordinates from the
  first step.

The detector declares ``graph_safe`` (the trainer compiles its loss and backward into one graph) unless it
has dropout (whose keyed masks are drawn on the host, op by op). Owns no state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["yolos_factory", "sincos_position_embeddings", "init_sincos"]


def sincos_position_embeddings(grid: tuple[int, int], dim: int) -> np.ndarray:
    """2-D sine-cosine embeddings ``[gh*gw, dim]`` (row-major patches): the first half of the features
    encodes the row, the second the column, each as ``sin``/``cos`` of ``pos / 10000**(i / (dim/4))``."""
    if dim % 4:
        raise ConfigError("model.hidden_size", dim, "a multiple of 4 for model.pos_init: sincos")
    gh, gw = grid
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def enc(pos: np.ndarray) -> np.ndarray:
        out = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(out), np.cos(out)], 1)

    yy, xx = np.meshgrid(np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij")
    return np.concatenate([enc(yy), enc(xx)], 1).astype(np.float32)


def init_sincos(model: Any) -> None:
    """Overwrite the patch part of ``vit.embeddings.position_embeddings`` (CLS/detection slots keep theirs)."""
    from mindspore import Tensor, ops

    cfg = model.config
    pos = model.vit.embeddings.position_embeddings
    new = pos.asnumpy().copy()
    k = cfg.num_detection_tokens
    new[0, 1 : new.shape[1] - k] = sincos_position_embeddings(cfg.grid, cfg.hidden_size)
    ops.assign(pos, Tensor(new))


def yolos_factory(preset: str | None, build: Callable[..., Any]) -> Callable[..., Any]:
    """The registered builder of ``preset`` (None: the generic ``yolos``); ``build(preset, **config)``."""

    def make(
        input_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        pos_init: str | None = None,
        init_weights: str | None = None,
        **cfg: Any,
    ) -> Any:
        if input_shape is not None:
            if len(input_shape) != 3:
                raise ConfigError(
                    "model.name",
                    preset or "yolos",
                    "image data: samples of shape [channels, height, width]",
                    f"this dataset's samples have shape {list(input_shape)}; train YOLOS on a detection dataset",
                )
            cfg.setdefault("num_channels", int(input_shape[0]))
            cfg.setdefault("image_size", [int(v) for v in input_shape[1:]])
        if num_classes is not None:
            cfg.setdefault("num_labels", int(num_classes))
        if pos_init not in (None, "sincos"):
            raise ConfigError("model.pos_init", pos_init, "null or 'sincos'")
        model = build(preset, **cfg)
        if init_weights:
            from openmindspore.models._checkpoint_io import load_checkpoint

            load_checkpoint(model, init_weights)
        elif pos_init == "sincos":
            init_sincos(model)
        c = model.config
        model.graph_safe = c.hidden_dropout_prob == 0 and c.attention_probs_dropout_prob == 0
        return model

    return make
