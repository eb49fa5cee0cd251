"""ViT configuration (a validated dataclass mirroring Hugging Face ``ViTConfig``) and presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["ViTConfig", "VIT_PRESETS", "pair", "check_fields", "config_from_dict"]


def pair(v: int | list[int] | tuple[int, ...], name: str) -> tuple[int, int]:
    """``224 -> (224, 224)``; ``[800, 1333] -> (800, 1333)``; anything else is a :class:`ConfigError`."""
    if isinstance(v, bool):
        raise ConfigError(name, v, "a positive int or [height, width]")
    if isinstance(v, int):
        v = (v, v)
    try:
        h, w = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(name, v, "a positive int or [height, width]") from None
    if h < 1 or w < 1:
        raise ConfigError(name, v, "positive sizes")
    return h, w


def check_fields(cfg: Any) -> None:
    """Validation shared by the ViT and YOLOS configs (raises :class:`ConfigError`)."""
    name = type(cfg).__name__
    for f in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "num_channels",
        "patch_size",
    ):
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}.{f}", v, "a positive int")
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ConfigError(
            f"{name}.num_attention_heads",
            cfg.num_attention_heads,
            f"a divisor of hidden_size={cfg.hidden_size}",
            "choose heads so that hidden_size / heads is an integer",
        )
    if cfg.hidden_act != "gelu":
        raise ConfigError(
            f"{name}.hidden_act",
            cfg.hidden_act,
            "'gelu' (exact, erf-based)",
            "only the exact GELU of the reference checkpoints is implemented",
        )
    if not 0.0 < float(cfg.layer_norm_eps) < 1e-2:
        raise ConfigError(f"{name}.layer_norm_eps", cfg.layer_norm_eps, "a small positive float such as 1e-12")
    for f in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        v = getattr(cfg, f)
        if not 0.0 <= float(v) < 1.0:
            raise ConfigError(f"{name}.{f}", v, "a probability in [0, 1)")
    gh, gw = cfg.image_size[0] // cfg.patch_size, cfg.image_size[1] // cfg.patch_size
    if gh < 1 or gw < 1:
        raise ConfigError(f"{name}.image_size", list(cfg.image_size), f"at least patch_size={cfg.patch_size}")


def config_from_dict(
    cls: type, d: Mapping[str, Any], aliases: Mapping[str, str] | None = None, ignore: tuple[str, ...] = ()
) -> Any:
    """Build ``cls`` from a dict, rejecting unknown keys with a :class:`ConfigError` that lists valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw: dict[str, Any] = {}
    for k, v in d.items():
        k = (aliases or {}).get(k, k)
        if k in ignore:
            continue
        if k not in names:
            raise ConfigError(f"{cls.__name__}.{k}", v, f"one of {sorted(names)}", "remove or rename the key")
        kw[k] = v
    if "id2label" in kw:
        kw["id2label"] = {int(k): str(v) for k, v in dict(kw["id2label"]).items()}
        if "num_labels" in names and "num_labels" not in kw:
            kw["num_labels"] = len(kw["id2label"])  # HF config.json stores the labels, not their count
    return cls(**kw)


@dataclass
class ViTConfig:
    """Vision Transformer hyper-parameters (names and defaults as in Hugging Face ``ViTConfig``).

    ``image_size`` is the (height, width) the position embeddings were trained for; other sizes work with
    ``interpolate_pos_encoding=True`` (bicubic, as in the reference).
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    num_channels: int = 3
    qkv_bias: bool = True
    num_labels: int = 1000
    seed: int = 0
    id2label: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = pair(self.image_size, "ViTConfig.image_size")
        self.patch_size = (
            int(self.patch_size) if not isinstance(self.patch_size, (list, tuple)) else _square_patch(self.patch_size)
        )
        check_fields(self)
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 1:
            raise ConfigError("ViTConfig.num_labels", self.num_labels, "a positive int")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` of the trained image size."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ViTConfig:
        """From our own keys or a Hugging Face ``config.json`` dict (extra HF bookkeeping keys ignored)."""
        return config_from_dict(cls, d, ignore=HF_IGNORED_KEYS)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        return d


def _square_patch(p: list | tuple) -> int:
    h, w = pair(p, "patch_size")
    if h != w:
        raise ConfigError("patch_size", list(p), "a square patch", "use an int patch_size")
    return h


# keys of a Hugging Face config.json that carry no architecture information
HF_IGNORED_KEYS = (
    "architectures",
    "model_type",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "label2id",
    "encoder_stride",
    "pooler_output_size",
    "pooler_act",
    "_name_or_path",
    "problem_type",
    "auxiliary_loss",
    "output_hidden_states",
    "return_dict",
    "use_cache",
)

VIT_PRESETS: dict[str, dict[str, Any]] = {
    # google/vit-base-patch16-224 and the DeiT/timm-derived tiny/small ports (WinKawaks/vit-*-patch16-224)
    "vit-tiny-patch16-224": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "vit-small-patch16-224": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "vit-base-patch16-224": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
