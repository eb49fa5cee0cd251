"""Model serving: KServe v2 / Open Inference Protocol REST, model replicas on Ray Serve, dynamic batching.

``Client``, the protocol helpers, the configs and the predictor registry import without Ray or MindSpore;
``Server`` and the deployments import Ray Serve on first use. Importing this package registers the
built-in predictor kinds (``predictor.py``: identity, trained; ``detector.py``: detector; ``mindir.py``:
mindir) with the registry (``registry.py``), which knows none of them. See docs/serving.md.
"""

from __future__ import annotations

from typing import Any

from openmindspore.serve import detector, mindir, predictor  # noqa: F401 - the built-in predictor kinds register

__all__ = [
    "Server",
    "BatchingConfig",
    "DeployConfig",
    "ServerConfig",
    "Client",
    "GrpcClient",
    "InferenceError",
    "export_mindir",
    "DynamicBatcher",
    "QueueFullError",
    "Predictor",
    "DetectorPredictor",
    "register_predictor",
    "load_predictor",
    "resolve_source",
    "MODEL_KINDS",
    "TensorSpec",
    "ProtocolError",
]

_WHERE = {
    "Server": "server",
    "BatchingConfig": "config",
    "DeployConfig": "config",
    "ServerConfig": "config",
    "Client": "client",
    "GrpcClient": "grpc_client",
    "InferenceError": "client",
    "export_mindir": "mindir",
    "DynamicBatcher": "batcher",
    "QueueFullError": "batcher",
    "Predictor": "registry",
    "DetectorPredictor": "detector",
    "register_predictor": "registry",
    "load_predictor": "registry",
    "resolve_source": "registry",
    "MODEL_KINDS": "registry",
    "TensorSpec": "protocol",
    "ProtocolError": "protocol",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"openmindspore.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'openmindspore.serve' has no attribute {name!r}")
