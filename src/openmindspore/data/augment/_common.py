"""What every augmentation op shares: the per-sample random key, the image-layout check, uint8 round trips.

Every random draw of an op comes from ``np.random.default_rng([seed, epoch, sample id, tag(, position)])``:
the op's tag separates ops, the op's position in the list separates two ops of one kind (position 0 keeps
the key ``random_shift`` has always used). Nothing depends on the batch a sample is in, on its position
in that batch or on the worker that computes it. :func:`sample_rngs` makes a batch's generators at once:
the same streams as :func:`sample_rng`, seeded ~4x faster (NumPy's ``SeedSequence`` hash run on all keys
at once).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.random.bit_generator import ISeedSequence

from openmindspore.errors import ConfigError

__all__ = ["TAGS", "sample_rng", "sample_rngs", "check_images", "to_uint8", "from_uint8", "shift_image", "shift_images"]

#: One tag per op kind (``shift`` keeps the 7 that ``random_shift`` used before the op list existed).
TAGS = {
    "shift": 7,
    "cutout": 11,
    "random_erasing": 12,
    "trivial_augment": 13,
    "cutmix": 14,
    "mixup": 15,
    "keep_cutout": 16,
    "keep_augment": 17,
    "saliency_mix": 18,
}


def sample_rng(seed: int, epoch: int, sid: int, tag: int, pos: int = 0) -> np.random.Generator:
    """The generator of one sample's draws for one op: keyed by ``(seed, epoch, sample id, tag, position)``."""
    key = [int(seed), int(epoch), int(sid), int(tag)]
    return np.random.default_rng(key if pos == 0 else [*key, int(pos)])


# NumPy's SeedSequence constants (numpy/random/bit_generator.pyx; the algorithm is frozen for reproducibility)
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _M32 = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF


@functools.cache
def _hash_consts(start: int, mult: int, count: int) -> tuple[np.uint32, ...]:
    """The constants of ``count`` SeedSequence hashes, two per hash: the one XORed in, then the one multiplied
    by (the constant is multiplied by ``mult`` in between; it evolves the same way for every key)."""
    out, h = [], start
    for _ in range(count):
        after = (h * mult) & _M32
        out += [np.uint32(h), np.uint32(after)]
        h = after
    return tuple(out)


def _seed_states(words: np.ndarray) -> np.ndarray:
    """``SeedSequence(row).generate_state(4, np.uint64)`` for every row of ``words`` ``[N, k]`` (uint32 key
    words, one per key value < 2**32): ``[N, 4]`` uint64, the words PCG64 is seeded from."""
    n, k = words.shape
    hashes = 4 + 12 + 4 * max(k - 4, 0)
    consts = iter(_hash_consts(_INIT_A, _MULT_A, hashes))
    shift = np.uint32(16)

    def hashmix(v: np.ndarray) -> np.ndarray:
        v = (v ^ next(consts)) * next(consts)
        return v ^ (v >> shift)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
        return r ^ (r >> shift)

    pool = [hashmix(words[:, i] if i < k else np.zeros(n, np.uint32)) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, k):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(words[:, src]))
    out = np.empty((n, 8), np.uint32)
    consts = iter(_hash_consts(_INIT_B, _MULT_B, 8))
    for i in range(8):
        out[:, i] = hashmix(pool[i % 4])
    return out.astype("<u4").view("<u8").astype(np.uint64)


class _Words(ISeedSequence):
    """A seed sequence whose state is already computed (one row of :func:`_seed_states`)."""

    def __init__(self, state: np.ndarray) -> None:
        self.state = state

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words != 4 or np.dtype(dtype) != np.uint64:
            raise ValueError("only PCG64's seeding (4 uint64 words) is precomputed")
        return self.state


@functools.cache
def _vectorised_ok() -> bool:
    """Whether :func:`_seed_states` is NumPy's SeedSequence in this process (checked once on a few keys)."""
    keys = np.array([[0, 0, 0, 0], [17005, 3, 4321, 7], [_M32, 1, 2**31, 18]], np.uint32)
    want = [np.random.SeedSequence([int(v) for v in k]).generate_state(4, np.uint64) for k in keys]
    return bool(np.array_equal(_seed_states(keys), np.array(want)))


def sample_rngs(seed: int, epoch: int, ids: np.ndarray, tag: int, pos: int = 0) -> list[np.random.Generator]:
    """``[sample_rng(seed, epoch, sid, tag, pos) for sid in ids]``: one independent generator per sample,
    each bitwise the same stream, seeded for the whole batch at once (keys with a value outside
    ``[0, 2**32)`` take :func:`sample_rng` one by one)."""
    sids = [int(s) for s in ids]
    head = [int(seed), int(epoch)]
    tail = [int(tag)] + ([int(pos)] if pos != 0 else [])
    if not sids or not all(0 <= v <= _M32 for v in [*head, *tail, min(sids), max(sids)]) or not _vectorised_ok():
        return [sample_rng(seed, epoch, sid, tag, pos) for sid in sids]
    words = np.empty((len(sids), 3 + len(tail)), np.uint32)
    words[:, :2], words[:, 2], words[:, 3:] = head, sids, tail
    # PCG64 takes any ISeedSequence (NumPy's documented interface); its stubs name SeedSequence only
    return [np.random.Generator(np.random.PCG64(_Words(st))) for st in _seed_states(words)]  # type: ignore[arg-type]


def check_images(x: np.ndarray, field: str = "x") -> None:
    """``x`` must be a batch of channels-first images ``[N, C, H, W]``; a channels-last batch ``[N, H, W, C]``
    (few channels last, many first) is refused with the transpose that fixes it."""
    shape = tuple(int(s) for s in x.shape)
    if x.ndim != 4:
        raise ConfigError(field, shape, "a batch of images [N, C, H, W]", "image ops need image data")
    c, h, w = shape[1:]
    if c > 4 and w <= 4 and h > 4:
        raise ConfigError(
            field,
            shape,
            "channels-first images [N, C, H, W]",
            f"this looks channels-last (NHWC: {c}x{h} pixels, {w} channels); transpose with x.transpose(0, 3, 1, 2)",
        )


def to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One image ``[C, H, W]`` whose values span ``[lo, hi]`` as uint8 ``[H, W, C]`` (``lo`` -> 0, ``hi`` -> 255)."""
    scaled = (img.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def from_uint8(u8: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`to_uint8`: uint8 ``[H, W, C]`` -> float32 ``[C, H, W]`` in ``[lo, hi]``."""
    return (u8.transpose(2, 0, 1).astype(np.float64) * ((hi - lo) / 255.0) + lo).astype(np.float32)


def shift_image(img: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``img [..., H, W]`` moved by ``(dy, dx)`` pixels; uncovered pixels get ``fill``."""
    h, w = img.shape[-2:]
    out = np.full_like(img, fill)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = img[..., ys, xs]
    return out


def shift_images(x: np.ndarray, offsets: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
    """``[shift_image(x[i], dy_i, dx_i, fill_i) for i]`` at once: ``x [N, ..., H, W]``, ``offsets [N, 2]`` int
    (dy, dx), ``fill`` a scalar or one value per image. Each image is padded with its fill by the largest
    shift, and its window at the offset is copied out. Returns a new array (pixels copied, bitwise)."""
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    offsets = np.asarray(offsets, np.int64).reshape(n, 2)
    m = int(np.abs(offsets).max(initial=0))
    flat = x.reshape(n, int(np.prod(x.shape[1:-2])), h, w)
    pad = np.empty((*flat.shape[:2], h + 2 * m, w + 2 * m), x.dtype)
    pad[...] = np.broadcast_to(np.asarray(fill, x.dtype), (n,)).reshape(n, 1, 1, 1)
    pad[:, :, m : m + h, m : m + w] = flat
    # every H x W window of the padded images, a view: [N, C', 2m + 1, 2m + 1, H, W]
    windows = sliding_window_view(pad, (h, w), axis=(2, 3))  # type: ignore[call-overload]  # stubs: one axis
    return windows[np.arange(n), :, m - offsets[:, 0], m - offsets[:, 1]].reshape(x.shape)
