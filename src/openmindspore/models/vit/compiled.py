"""Compiled (``ms.jit``) inference forwards of ViT and YOLOS models: one per model, cached on the model.

MindSpore compiles one graph per input shape and keeps it, so a YOLOS detector that meets images of several
sizes compiles once per size (its shape bucket) and reuses that graph afterwards. The position-embedding
interpolation of a size is part of its graph (two products with constant bicubic matrices: ~0.1 GFLOP for
YOLOS-tiny at 512 pixels, about 1% of the forward), so nothing else needs caching. Op by op, every MindSpore
operator (and more so each C++ kernel, a ``Custom`` operator) pays a host-side dispatch cost; the graph
pays it once.
"""

from __future__ import annotations

from collections.abc import Callable

from mindspore import Tensor, nn

__all__ = ["compiled_forward"]

_ATTR = "_oms_compiled_forward"


def compiled_forward(model: nn.Cell) -> Callable[..., tuple]:
    """``fn(pixel_values, *args) -> model(pixel_values, *args)`` compiled with ``ms.jit`` (eval mode is the
    caller's: call ``model.set_train(False)`` first; a mode change recompiles)."""
    fn = model.__dict__.get(_ATTR)
    if fn is None:
        import mindspore as ms

        def forward(pixel_values: Tensor, *args: object) -> tuple:
            return model(pixel_values, *args)

        fn = ms.jit(forward)
        object.__setattr__(model, _ATTR, fn)
    return fn
