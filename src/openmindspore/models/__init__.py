"""MindSpore models: registry, fast CPU convolution, spec-driven CNN, MLP."""

from openmindspore.models import vit, yolos  # noqa: E402,F401  (registers ViT/YOLOS presets)
from openmindspore.models.cnn import CNN, DEFAULT_CNN, MLP, SpecError, validate_spec
from openmindspore.models.conv import Conv2d
from openmindspore.models.layers import Dense, Dropout, set_noise_key
from openmindspore.models.registry import create_model, list_models, register_model

__all__ = [
    "CNN",
    "DEFAULT_CNN",
    "MLP",
    "SpecError",
    "validate_spec",
    "Conv2d",
    "Dense",
    "Dropout",
    "set_noise_key",
    "create_model",
    "list_models",
    "register_model",
]
