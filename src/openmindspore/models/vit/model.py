"""ViT for image classification in MindSpore, equal to Hugging Face ``ViTForImageClassification``.

Parameter paths mirror the (transformers >= 5) state dict, e.g. ``vit.layers.3.attention.q_proj.weight``;
older checkpoints (``vit.encoder.layer.3.attention.attention.query.weight``) are renamed by
:mod:`openmindspore.models.hf_convert`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.ops.primitive import constexpr

from openmindspore.errors import ConfigError
from openmindspore.models.kernels import transformer as fused
from openmindspore.models.layers import Dropout
from openmindspore.models.vit.blocks import (
    GELU,
    LayerNorm,
    Linear,
    PatchProjection,
    attention,
    fused_attention,
    init_normal,
    trunc_normal,
)
from openmindspore.models.vit.compiled import compiled_forward
from openmindspore.models.vit.config import ViTConfig
from openmindspore.models.vit.interpolate import resize_grid

__all__ = ["ViTEmbeddings", "ViTLayer", "ViTModel", "ViTForImageClassification", "ViTOutput"]


def _dropout(p: float, layer_id: int) -> Dropout | None:
    return Dropout(p, layer_id) if p > 0 else None


@constexpr
def _check_channels(got: int, expected: int) -> None:
    """Raise :class:`ConfigError` on a wrong channel count (evaluated at compile time inside a graph)."""
    if got != expected:
        raise ConfigError(
            "pixel_values.shape[1]", got, f"{expected} channels", "pass images as [batch, channels, height, width]"
        )


@constexpr
def _check_image_size(got: tuple, expected: tuple) -> None:
    """Without interpolation the input must have the configured size (a compile-time check in a graph)."""
    if tuple(got) != tuple(expected):
        raise ConfigError(
            "pixel_values size",
            tuple(got),
            f"the configured image_size {tuple(expected)}",
            "resize the input or pass interpolate_pos_encoding=True",
        )


@constexpr
def _check_square(n: int, side: int) -> None:
    if side * side != n:
        raise ConfigError("position_embeddings", n, "a square number of patch positions to interpolate")


class PatchEmbeddings(nn.Cell):
    """``[B, C, H, W] -> [B, (H//p)*(W//p), D]`` via ``projection`` (a patch-sized stride-p convolution)."""

    def __init__(self, num_channels: int, hidden: int, patch: int, seed: int) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.projection = PatchProjection(num_channels, hidden, patch, seed)

    def construct(self, x: Tensor) -> Tensor:
        _check_channels(x.shape[1], self.num_channels)
        return self.projection(x)


class ViTEmbeddings(nn.Cell):
    """CLS token + patch embeddings + position embeddings: ``[B, C, H, W] -> [B, 1 + N, D]``."""

    def __init__(self, cfg: ViTConfig, rng: np.random.Generator) -> None:
        super().__init__()
        # plain attributes, not the config: graph mode (ms.jit) cannot read a pydantic model
        self.hidden_size, self.patch_size, self.image_size = cfg.hidden_size, cfg.patch_size, cfg.image_size
        d = cfg.hidden_size
        gh, gw = cfg.grid
        self.patch_embeddings = PatchEmbeddings(cfg.num_channels, d, cfg.patch_size, cfg.seed)
        self.cls_token = Parameter(Tensor(trunc_normal(rng, (1, 1, d), cfg.initializer_range)), name="cls_token")
        self.position_embeddings = Parameter(
            Tensor(trunc_normal(rng, (1, 1 + gh * gw, d), cfg.initializer_range)), name="position_embeddings"
        )
        self.dropout = _dropout(cfg.hidden_dropout_prob, 1)

    def construct(self, pixel_values: Tensor, interpolate_pos_encoding: bool = False) -> Tensor:
        b, _, h, w = pixel_values.shape
        x = self.patch_embeddings(pixel_values)
        x = ops.concat((ops.broadcast_to(self.cls_token, (b, 1, self.hidden_size)), x), 1)
        p = self.patch_size
        if interpolate_pos_encoding:
            pos = self.interpolate_pos_encoding(h // p, w // p)
        else:
            _check_image_size((h, w), self.image_size)
            pos = self.position_embeddings
        x = x + pos
        return self.dropout(x) if self.dropout is not None else x

    def interpolate_pos_encoding(self, new_h: int, new_w: int) -> Tensor:
        """Position embeddings for a ``new_h x new_w`` patch grid ``-> [1, 1 + new_h*new_w, D]`` (bicubic).

        As in the reference: unchanged when the token count matches and the image is square; the source
        grid is taken as ``sqrt(N) x sqrt(N)``.
        """
        n = self.position_embeddings.shape[1] - 1
        side = int(round(n**0.5))
        if new_h * new_w == n and new_h == new_w:
            return self.position_embeddings
        _check_square(n, side)
        cls = self.position_embeddings[:, :1]
        grid = resize_grid(self.position_embeddings[:, 1:], (side, side), (new_h, new_w))
        return ops.concat((cls, grid), 1)


class ViTSelfAttention(nn.Cell):
    """``q_proj/k_proj/v_proj/o_proj``: ``[B, N, D] -> [B, N, D]``."""

    def __init__(self, cfg: ViTConfig, layer_id: int) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.q_proj = Linear(d, d, has_bias=cfg.qkv_bias)
        self.k_proj = Linear(d, d, has_bias=cfg.qkv_bias)
        self.v_proj = Linear(d, d, has_bias=cfg.qkv_bias)
        self.o_proj = Linear(d, d)
        self.attn_dropout = _dropout(cfg.attention_probs_dropout_prob, 100 + layer_id)
        self.fused = fused_attention(self.heads, d)

    def construct(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``attention(x)``, or ``residual + attention(x)`` (fused into the output linear on the kernels)."""
        if self.fused is not None and (self.attn_dropout is None or not self.training):
            return self.fused(
                x,
                self.q_proj.weight,
                self.q_proj.bias,
                self.k_proj.weight,
                self.k_proj.bias,
                self.v_proj.weight,
                self.v_proj.bias,
                self.o_proj.weight,
                self.o_proj.bias,
                residual,
            )
        y = attention(
            x,
            self.q_proj.weight,
            self.q_proj.bias,
            self.k_proj.weight,
            self.k_proj.bias,
            self.v_proj.weight,
            self.v_proj.bias,
            self.o_proj.weight,
            self.o_proj.bias,
            self.heads,
            self.attn_dropout,
        )
        return y if residual is None else residual + y


class ViTMLP(nn.Cell):
    """``fc1 -> GELU(exact) -> fc2``; on the kernels in inference, GELU is applied inside fc1's product and
    ``construct(x, residual)`` adds the residual inside fc2's."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.fc1 = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = GELU()
        on = fused.available()
        self.fc1_gelu = fused.LinearOp("gelu") if on else None
        self.fc2_res = fused.LinearOp("residual") if on else None

    def construct(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.fc1_gelu is None or self.fc2_res is None:
            y = self.fc2(self.act(self.fc1(x)))
            return y if residual is None else residual + y
        x2 = x.reshape(-1, x.shape[-1])
        h = self.act(self.fc1(x2)) if self.training else self.fc1_gelu(x2, self.fc1.weight, self.fc1.bias)
        if residual is None:
            return self.fc2(h).reshape(x.shape)
        return self.fc2_res(h, self.fc2.weight, self.fc2.bias, residual.reshape(x2.shape)).reshape(x.shape)


class ViTLayer(nn.Cell):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``+ MLP(LN(.))``; ``[B, N, D] -> [B, N, D]``."""

    def __init__(self, cfg: ViTConfig, layer_id: int) -> None:
        super().__init__()
        self.attention = ViTSelfAttention(cfg, layer_id)
        self.layernorm_before = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.layernorm_after = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.mlp = ViTMLP(cfg)
        self.dropout = _dropout(cfg.hidden_dropout_prob, 200 + layer_id)

    def _drop(self, x: Tensor) -> Tensor:
        return self.dropout(x) if self.dropout is not None else x

    def construct(self, x: Tensor) -> Tensor:
        if self.dropout is None or not self.training:  # no dropout between a branch and its residual
            x = self.attention(self.layernorm_before(x), x)
            return self.mlp(self.layernorm_after(x), x)
        x = x + self._drop(self.attention(self.layernorm_before(x)))
        return x + self._drop(self.mlp(self.layernorm_after(x)))


class ViTModel(nn.Cell):
    """Embeddings, ``layers``, final ``layernorm``. Returns ``(last_hidden_state [B, 1+N, D], hidden_states)``
    where ``hidden_states`` is a tuple of ``L + 1`` tensors (embedding output, then each layer's output)."""

    def __init__(self, cfg: ViTConfig, rng: np.random.Generator) -> None:
        super().__init__()
        self.embeddings = ViTEmbeddings(cfg, rng)
        self.layers = nn.CellList([ViTLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.layernorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)

    def construct(self, pixel_values: Tensor, interpolate_pos_encoding: bool = False) -> tuple:
        x = self.embeddings(pixel_values, interpolate_pos_encoding)
        hidden = [x]
        for layer in self.layers:
            x = layer(x)
            hidden.append(x)
        return self.layernorm(x), tuple(hidden)


@dataclass
class ViTOutput:
    """Rich view of ``ViTForImageClassification`` outputs (numpy, outside the graph)."""

    logits: np.ndarray
    last_hidden_state: np.ndarray
    hidden_states: tuple[np.ndarray, ...]


class ViTForImageClassification(nn.Cell):
    """ViT encoder + linear ``classifier`` on the CLS token.

    ``construct(pixel_values [B, C, H, W], interpolate_pos_encoding=False)`` returns the tuple
    ``(logits [B, num_labels], last_hidden_state [B, 1+N, D], hidden_states)``.
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.config = cfg  # host side only (graph code reads plain attributes)
        rng = np.random.default_rng(cfg.seed)
        self.vit = ViTModel(cfg, rng)
        self.classifier = Linear(cfg.hidden_size, cfg.num_labels)
        init_normal(self, rng, cfg.initializer_range)

    def construct(self, pixel_values: Tensor, interpolate_pos_encoding: bool = False) -> tuple:
        seq, hidden = self.vit(pixel_values, interpolate_pos_encoding)
        return self.classifier(seq[:, 0]), seq, hidden

    def predict(
        self, pixel_values: np.ndarray, interpolate_pos_encoding: bool = False, compiled: bool = False
    ) -> ViTOutput:
        """Run in eval mode on a numpy batch and return numpy outputs. ``compiled``: through one ``ms.jit``
        graph per input shape (:func:`~openmindspore.models.vit.compiled.compiled_forward`)."""
        self.set_train(False)
        fn = compiled_forward(self) if compiled else self
        logits, seq, hidden = fn(Tensor(np.asarray(pixel_values, np.float32)), interpolate_pos_encoding)
        return ViTOutput(logits.asnumpy(), seq.asnumpy(), tuple(h.asnumpy() for h in hidden))
