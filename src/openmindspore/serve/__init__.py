"""Model serving: KServe v2 / Open Inference Protocol REST, model replicas on Ray Serve, dynamic batching.

``Client`` and the protocol helpers import without Ray; ``Server`` and the deployments import Ray
Serve on first use. See docs/serving.md.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Server",
    "BatchingConfig",
    "Client",
    "InferenceError",
    "DynamicBatcher",
    "QueueFullError",
    "Predictor",
    "DetectorPredictor",
    "register_predictor",
    "load_predictor",
    "MODEL_KINDS",
    "TensorSpec",
    "ProtocolError",
]

_WHERE = {
    "Server": "server",
    "BatchingConfig": "server",
    "Client": "client",
    "InferenceError": "client",
    "DynamicBatcher": "batcher",
    "QueueFullError": "batcher",
    "Predictor": "predictor",
    "DetectorPredictor": "detector",
    "register_predictor": "predictor",
    "load_predictor": "predictor",
    "MODEL_KINDS": "predictor",
    "TensorSpec": "protocol",
    "ProtocolError": "protocol",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"openmindspore.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openmindspore.serve' has no attribute {name!r}")
