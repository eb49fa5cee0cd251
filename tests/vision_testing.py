"""Helpers for parity tests: random-but-well-scaled Hugging Face reference models (no hub access)."""

from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("GLOG_v", "3")

TOL = 1e-4  # absolute tolerance demanded by the parity tests


def randomize(model, seed: int = 0) -> None:
    """Give every parameter non-zero random values at a scale that keeps activations O(1).

    The reference init leaves CLS/detection tokens and (mid-)position embeddings at zero and biases at
    zero, which would hide bugs in how they are used; here they are all random.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and "embeddings" not in name and "token" not in name:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / math.sqrt(fan_in)))
            elif (
                name.endswith("layernorm_before.weight")
                or name.endswith("layernorm_after.weight")
                or name.endswith("layernorm.weight")
            ):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:  # biases, tokens, position embeddings, mid-position embeddings
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def state_dict_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def detr_inputs(seed: int = 0, counts: tuple[int, ...] = (3, 0, 5), q: int = 8, num_labels: int = 4):
    """Random DETR head outputs ``(logits [B, q, labels+1], boxes [B, q, 4] cxcywh)`` and targets with
    ``counts[b]`` objects per image (Hugging Face's target format)."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((len(counts), q, num_labels + 1)) * 2).astype(np.float32)
    boxes = np.concatenate(
        [rng.uniform(0.2, 0.8, (len(counts), q, 2)), rng.uniform(0.05, 0.4, (len(counts), q, 2))], -1
    ).astype(np.float32)
    targets = []
    for n in counts:
        tb = np.concatenate([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.05, 0.4, (n, 2))], -1).astype(np.float32)
        targets.append({"class_labels": rng.integers(0, num_labels, n).astype(np.int64), "boxes": tb})
    return logits, boxes, targets
