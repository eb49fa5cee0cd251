"""YOLOS object detector in MindSpore, equal to Hugging Face ``YolosForObjectDetection``.

A ViT encoder whose sequence is ``[CLS, patches..., det_1..det_K]``; the final hidden states of the K
detection tokens go through two 3-layer MLP heads: class logits (``num_labels + 1``, last = no object)
and sigmoid boxes ``(cx, cy, w, h)`` normalised to the (unpadded) image. Position embeddings (and the
optional mid-layer position embeddings added after every layer but the last) are always resampled
bicubically to the input's patch grid, as in the reference. Parameter paths mirror the reference state
dict (``vit.encoder.layer.0.attention.attention.query.weight`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.ops.primitive import constexpr

from openmindspore.errors import ConfigError
from openmindspore.models.layers import Dropout
from openmindspore.models.vit.blocks import (
    GELU,
    LayerNorm,
    Linear,
    attention,
    fused_attention,
    init_normal,
    trunc_normal,
)
from openmindspore.models.vit.compiled import compiled_forward
from openmindspore.models.vit.interpolate import resize_grid
from openmindspore.models.vit.model import PatchEmbeddings
from openmindspore.models.yolos.config import YolosConfig

__all__ = ["YolosForObjectDetection", "YolosModel", "YolosOutput", "interpolate_positions"]


@constexpr
def _check_size(h: int, w: int, p: int) -> None:
    """Raise :class:`ConfigError` for an image smaller than one patch (evaluated at compile time in a graph)."""
    if h < p or w < p:
        raise ConfigError("pixel_values size", (h, w), f"at least one {p}x{p} patch")


def _dropout(p: float, layer_id: int) -> Dropout | None:
    return Dropout(p, layer_id) if p > 0 else None


def interpolate_positions(pos: Tensor, num_det: int, grid: tuple[int, int], new_grid: tuple[int, int]) -> Tensor:
    """``[D, 1 + gh*gw + K, C] -> [D, 1 + nh*nw + K, C]``: resample the patch part, keep CLS and det tokens."""
    cls = pos[:, :1]
    det = pos[:, pos.shape[1] - num_det :]
    patches = resize_grid(pos[:, 1 : pos.shape[1] - num_det], grid, new_grid)
    return ops.concat((cls, patches, det), 1)


class YolosEmbeddings(nn.Cell):
    """``[B, C, H, W] -> [B, 1 + (H//p)*(W//p) + K, D]``: CLS, patches, detection tokens, + positions."""

    def __init__(self, cfg: YolosConfig, rng: np.random.Generator) -> None:
        super().__init__()
        # plain attributes, not the config: graph mode (ms.jit) cannot read a pydantic model
        self.patch_size, self.hidden_size, self.num_detection_tokens = (
            cfg.patch_size,
            cfg.hidden_size,
            cfg.num_detection_tokens,
        )
        self.grid = cfg.grid
        d, k = cfg.hidden_size, cfg.num_detection_tokens
        gh, gw = cfg.grid
        std = cfg.initializer_range
        self.cls_token = Parameter(Tensor(trunc_normal(rng, (1, 1, d), std)), name="cls_token")
        self.detection_tokens = Parameter(Tensor(trunc_normal(rng, (1, k, d), std)), name="detection_tokens")
        self.patch_embeddings = PatchEmbeddings(cfg.num_channels, d, cfg.patch_size, cfg.seed)
        self.position_embeddings = Parameter(
            Tensor(trunc_normal(rng, (1, 1 + gh * gw + k, d), std)), name="position_embeddings"
        )
        self.dropout = _dropout(cfg.hidden_dropout_prob, 1)

    def construct(self, pixel_values: Tensor) -> Tensor:
        b, _, h, w = pixel_values.shape
        p, d = self.patch_size, self.hidden_size
        x = self.patch_embeddings(pixel_values)
        x = ops.concat(
            (
                ops.broadcast_to(self.cls_token, (b, 1, d)),
                x,
                ops.broadcast_to(self.detection_tokens, (b, self.num_detection_tokens, d)),
            ),
            1,
        )
        x = x + interpolate_positions(self.position_embeddings, self.num_detection_tokens, self.grid, (h // p, w // p))
        return self.dropout(x) if self.dropout is not None else x


class YolosSelfAttention(nn.Cell):
    """Projections ``query``/``key``/``value`` (the output projection is applied by the parent)."""

    def __init__(self, cfg: YolosConfig, layer_id: int) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query = Linear(d, d, has_bias=cfg.qkv_bias)
        self.key = Linear(d, d, has_bias=cfg.qkv_bias)
        self.value = Linear(d, d, has_bias=cfg.qkv_bias)
        self.attn_dropout = _dropout(cfg.attention_probs_dropout_prob, 100 + layer_id)
        self.fused = fused_attention(self.heads, d)

    def construct(self, x: Tensor, wo: Tensor, bo: Tensor) -> Tensor:
        if self.fused is not None and (self.attn_dropout is None or not self.training):
            return self.fused(
                x,
                self.query.weight,
                self.query.bias,
                self.key.weight,
                self.key.bias,
                self.value.weight,
                self.value.bias,
                wo,
                bo,
            )
        return attention(
            x,
            self.query.weight,
            self.query.bias,
            self.key.weight,
            self.key.bias,
            self.value.weight,
            self.value.bias,
            wo,
            bo,
            self.heads,
            self.attn_dropout,
        )


class _Dense(nn.Cell):
    """A cell holding one ``dense`` Linear (+ dropout), so parameter paths read ``...output.dense.weight``."""

    def __init__(self, d_in: int, d_out: int, p: float, layer_id: int) -> None:
        super().__init__()
        self.dense = Linear(d_in, d_out)
        self.dropout = _dropout(p, layer_id)

    def construct(self, x: Tensor) -> Tensor:
        x = self.dense(x)
        return self.dropout(x) if self.dropout is not None else x


class YolosAttention(nn.Cell):
    def __init__(self, cfg: YolosConfig, layer_id: int) -> None:
        super().__init__()
        self.attention = YolosSelfAttention(cfg, layer_id)
        self.output = _Dense(cfg.hidden_size, cfg.hidden_size, cfg.hidden_dropout_prob, 200 + layer_id)

    def construct(self, x: Tensor) -> Tensor:
        y = self.attention(x, self.output.dense.weight, self.output.dense.bias)  # includes output.dense
        return self.output.dropout(y) if self.output.dropout is not None else y


class YolosLayer(nn.Cell):
    """Pre-norm block ``x + Attn(LN(x))``, ``+ MLP(LN(.))``: ``[B, N, D] -> [B, N, D]``."""

    def __init__(self, cfg: YolosConfig, layer_id: int) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.attention = YolosAttention(cfg, layer_id)
        self.intermediate = _Dense(d, cfg.intermediate_size, 0.0, 0)
        self.output = _Dense(cfg.intermediate_size, d, cfg.hidden_dropout_prob, 300 + layer_id)
        self.layernorm_before = LayerNorm(d, cfg.layer_norm_eps)
        self.layernorm_after = LayerNorm(d, cfg.layer_norm_eps)
        self.act = GELU()

    def construct(self, x: Tensor) -> Tensor:
        x = self.attention(self.layernorm_before(x)) + x
        return self.output(self.act(self.intermediate(self.layernorm_after(x)))) + x


class InterpolateMidPositionEmbeddings(nn.Cell):
    """Holds ``mid_position_embeddings [L-1, 1, 1 + gh*gw + K, D]`` and resamples them to a new grid."""

    def __init__(self, cfg: YolosConfig, rng: np.random.Generator) -> None:
        super().__init__()
        self.num_detection_tokens, self.grid = cfg.num_detection_tokens, cfg.grid
        gh, gw = cfg.grid
        shape = (cfg.num_hidden_layers - 1, 1, 1 + gh * gw + cfg.num_detection_tokens, cfg.hidden_size)
        self.mid_position_embeddings = Parameter(
            Tensor(trunc_normal(rng, shape, cfg.initializer_range)), name="mid_position_embeddings"
        )

    def construct(self, new_grid: tuple[int, int]) -> Tensor:
        """``-> [L-1, 1 + nh*nw + K, D]``."""
        pos = self.mid_position_embeddings
        pos = pos.reshape(pos.shape[0], pos.shape[2], pos.shape[3])
        return interpolate_positions(pos, self.num_detection_tokens, self.grid, new_grid)


class YolosEncoder(nn.Cell):
    """``layer`` stack; with mid-position embeddings, layer ``i < L-1``'s output gets ``mid[i]`` added.

    Returns ``(hidden [B, N, D], hidden_states)``: the embedding output then each layer's output (before
    the mid-position addition), as the reference records them.
    """

    def __init__(self, cfg: YolosConfig, rng: np.random.Generator) -> None:
        super().__init__()
        self.layer = nn.CellList([YolosLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.interpolation = InterpolateMidPositionEmbeddings(cfg, rng) if cfg.use_mid_position_embeddings else None

    def construct(self, x: Tensor, new_grid: tuple[int, int]) -> tuple:
        mid = self.interpolation(new_grid) if self.interpolation is not None else None
        hidden = [x]
        n = len(self.layer)
        for i, layer in enumerate(self.layer):
            x = layer(x)
            hidden.append(x)
            if mid is not None and i < n - 1:
                x = x + mid[i]
        return x, tuple(hidden)


class YolosModel(nn.Cell):
    """Embeddings + encoder + final ``layernorm``: ``[B, C, H, W] -> ([B, N, D], hidden_states)``."""

    def __init__(self, cfg: YolosConfig, rng: np.random.Generator) -> None:
        super().__init__()
        self.patch_size = cfg.patch_size
        self.embeddings = YolosEmbeddings(cfg, rng)
        self.encoder = YolosEncoder(cfg, rng)
        self.layernorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)

    def construct(self, pixel_values: Tensor) -> tuple:
        h, w = pixel_values.shape[-2:]
        p = self.patch_size
        _check_size(h, w, p)
        x = self.embeddings(pixel_values)
        x, hidden = self.encoder(x, (h // p, w // p))
        return self.layernorm(x), hidden


class MLPPredictionHead(nn.Cell):
    """``layers.0 -> ReLU -> layers.1 -> ReLU -> layers.2`` (DETR's FFN head)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [d_in] + [d_hidden] * (num_layers - 1)
        self.layers = nn.CellList([Linear(a, b) for a, b in zip(dims, dims[1:] + [d_out])])

    def construct(self, x: Tensor) -> Tensor:
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < n - 1:
                x = ops.relu(x)
        return x


@dataclass
class YolosOutput:
    """Rich view of the outputs (numpy). ``logits [B, K, num_labels+1]``, ``pred_boxes [B, K, 4]`` (cxcywh)."""

    logits: np.ndarray
    pred_boxes: np.ndarray
    last_hidden_state: np.ndarray
    hidden_states: tuple[np.ndarray, ...]


class YolosForObjectDetection(nn.Cell):
    """YOLOS detector. ``construct(pixel_values [B, C, H, W])`` returns the tuple
    ``(logits [B, K, num_labels+1], pred_boxes [B, K, 4], last_hidden_state [B, N, D], hidden_states)``.
    Any ``H, W >= patch_size`` works (position embeddings are resampled to the grid ``H//p x W//p``)."""

    def __init__(self, cfg: YolosConfig) -> None:
        super().__init__()
        self.config = cfg  # host side only (graph code reads plain attributes)
        self.num_detection_tokens = cfg.num_detection_tokens
        rng = np.random.default_rng(cfg.seed)
        d = cfg.hidden_size
        self.vit = YolosModel(cfg, rng)
        self.class_labels_classifier = MLPPredictionHead(d, d, cfg.num_labels + 1)
        self.bbox_predictor = MLPPredictionHead(d, d, 4)
        init_normal(self, rng, cfg.initializer_range)

    def construct(self, pixel_values: Tensor) -> tuple:
        seq, hidden = self.vit(pixel_values)
        det = seq[:, seq.shape[1] - self.num_detection_tokens :]
        logits = self.class_labels_classifier(det)
        boxes = ops.sigmoid(self.bbox_predictor(det))
        return logits, boxes, seq, hidden

    def predict(self, pixel_values: np.ndarray, compiled: bool = False) -> YolosOutput:
        """Eval-mode forward on a numpy batch ``[B, C, H, W]``; numpy outputs. ``compiled``: through one
        ``ms.jit`` graph per input shape (:func:`~openmindspore.models.vit.compiled.compiled_forward`)."""
        self.set_train(False)
        fn = compiled_forward(self) if compiled else self
        logits, boxes, seq, hidden = fn(Tensor(np.asarray(pixel_values, np.float32)))
        return YolosOutput(logits.asnumpy(), boxes.asnumpy(), seq.asnumpy(), tuple(h.asnumpy() for h in hidden))
