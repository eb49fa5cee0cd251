"""Table-driven, strict conversion of Hugging Face ViT / YOLOS weights to MindSpore.

Our parameter paths equal the current ``transformers`` state dict, so conversion is (1) renaming legacy
key spellings found in older hub checkpoints by the regex table :data:`RENAMES`, then (2) a strict
check: every source key must be used, every target parameter filled, every shape equal. Any mismatch
raises :class:`~openmindspore.errors.ConfigError` listing the offending keys; nothing is loaded
partially and ``strict_load=False`` is never used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from openmindspore.errors import ConfigError
from openmindspore.models._checkpoint_io import format_keys, load_checkpoint, read_tensors

__all__ = [
    "RENAMES",
    "family_of",
    "convert_state_dict",
    "load_hf_state_dict",
    "convert_hf_checkpoint",
    "load_checkpoint",  # re-exported from _checkpoint_io (older callers); import it from there
    "model_from_hf_config",
]

#: the model families this module converts
Family = Literal["vit", "yolos"]

# (pattern, replacement) applied in order to each source key; legacy hub spellings -> current names
RENAMES: dict[Family, list[tuple[str, str]]] = {
    "vit": [
        (r"^vit\.encoder\.layer\.(\d+)\.attention\.attention\.query\.", r"vit.layers.\1.attention.q_proj."),
        (r"^vit\.encoder\.layer\.(\d+)\.attention\.attention\.key\.", r"vit.layers.\1.attention.k_proj."),
        (r"^vit\.encoder\.layer\.(\d+)\.attention\.attention\.value\.", r"vit.layers.\1.attention.v_proj."),
        (r"^vit\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"vit.layers.\1.attention.o_proj."),
        (r"^vit\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"vit.layers.\1.mlp.fc1."),
        (r"^vit\.encoder\.layer\.(\d+)\.output\.dense\.", r"vit.layers.\1.mlp.fc2."),
        (r"^vit\.encoder\.layer\.(\d+)\.(layernorm_before|layernorm_after)\.", r"vit.layers.\1.\2."),
    ],
    "yolos": [
        (r"^vit\.encoder\.mid_position_embeddings$", "vit.encoder.interpolation.mid_position_embeddings"),
    ],
}


def family_of(model: nn.Cell) -> Family:
    """``"vit"`` or ``"yolos"`` for our model classes."""
    from openmindspore.models.vit.model import ViTForImageClassification
    from openmindspore.models.yolos.model import YolosForObjectDetection

    if isinstance(model, YolosForObjectDetection):
        return "yolos"
    if isinstance(model, ViTForImageClassification):
        return "vit"
    raise ConfigError("model", type(model).__name__, "a ViTForImageClassification or YolosForObjectDetection")


def _rename(key: str, table: list[tuple[str, str]]) -> str:
    for pat, rep in table:
        key = re.sub(pat, rep, key)
    return key


def convert_state_dict(model: nn.Cell, src: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Rename and strictly check ``src`` (name -> array-like) against ``model``'s parameters.

    Returns ``{our_name: float32 array}`` covering every parameter exactly once.
    """
    table = RENAMES[family_of(model)]
    target = {p.name: tuple(p.shape) for p in model.get_parameters()}
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    for k, v in src.items():
        name = _rename(str(k), table)
        if name not in target:
            unexpected.append(k)
            continue
        if name in origin:
            raise ConfigError(
                "checkpoint keys", [origin[name], k], "distinct keys", f"both map to {name}; remove the duplicate"
            )
        origin[name] = k
        out[name] = np.asarray(v, dtype=np.float32)
    missing = [n for n in target if n not in out]
    shapes = [f"{origin[n]}: {out[n].shape} vs {target[n]}" for n in out if out[n].shape != target[n]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {format_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {format_keys(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (checkpoint vs model): {format_keys(shapes)}")
    if problems:
        raise ConfigError(
            "checkpoint",
            "; ".join(problems),
            "exactly the model's parameters with equal shapes",
            "check --model / the config (num_labels, image_size, mid-position embeddings, "
            "num_detection_tokens) matches the checkpoint",
        )
    return out


def load_hf_state_dict(model: nn.Cell, src: Mapping[str, Any]) -> None:
    """Strictly convert ``src`` and copy it into ``model`` in place."""
    arrays = convert_state_dict(model, src)
    for p in model.get_parameters():
        p.set_data(Tensor(arrays[p.name]))


def model_from_hf_config(
    model_name: str, hf_config: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
) -> nn.Cell:
    """Build registered model ``model_name``; the architecture fields of a Hugging Face ``config.json``
    dict (if given) replace the preset's values, then ``overrides`` apply. HF bookkeeping keys are dropped."""
    from openmindspore.models.registry import create_model
    from openmindspore.models.vit.config import ViTConfig
    from openmindspore.models.yolos.config import YolosConfig

    cfg: dict[str, Any] = {}
    if hf_config:
        cls = YolosConfig if model_name.startswith("yolos") else ViTConfig
        known = set(cls.model_fields) - {"seed"}
        cfg.update({k: v for k, v in hf_config.items() if k in known})  # num_labels defaults to len(id2label)
    cfg.update(overrides or {})
    return create_model(model_name, **cfg)


def convert_hf_checkpoint(
    src: str | Path,
    model_name: str,
    out: str | Path,
    hf_config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read a HF ``.safetensors``/``.bin`` file, convert strictly, save a MindSpore ``.ckpt``.

    A ``config.json`` beside ``src`` is used automatically when ``hf_config`` is not given. Writes
    ``out`` and ``out`` with suffix ``.json`` (our config, for ``oms detect``). Returns a small report.
    """
    src = Path(src)
    cfg_path = Path(hf_config) if hf_config else (src.parent / "config.json")
    hf_cfg = None
    if hf_config or cfg_path.is_file():
        try:
            hf_cfg = json.loads(Path(cfg_path).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError("config", str(cfg_path), "a readable Hugging Face config.json", str(e)) from None
    model = model_from_hf_config(model_name, hf_cfg, overrides)
    arrays = convert_state_dict(model, read_tensors(src))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint([{"name": n, "data": Tensor(a)} for n, a in arrays.items()], str(out))
    meta = {"model": model_name, "family": family_of(model), "config": model.config.to_dict()}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    return {
        "src": str(src),
        "out": str(out),
        "model": model_name,
        "parameters": len(arrays),
        "numel": int(sum(a.size for a in arrays.values())),
        "config_from": str(cfg_path) if hf_cfg else None,
    }
