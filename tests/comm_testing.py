"""Helpers for the collective tests: run a function per rank on threads, inputs whose sum depends on the order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["inputs", "on_ranks", "assert_survivors_name"]


def on_ranks(world: int, fn: Callable[[int], Any], timeout: float = 60.0) -> list[Any]:
    """Run ``fn(rank)`` for every rank on its own thread; returns results (or raised exceptions) by rank."""
    out: list[Any] = [None] * world

    def run(r: int) -> None:
        try:
            out[r] = fn(r)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out[r] = e

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a rank did not finish"
    return out


def inputs(world: int, n: int, dtype: np.dtype, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        # magnitudes over many decades, so that the summation order changes the rounding
        decades = 3 if np.dtype(dtype).itemsize == 2 else 6  # float16 overflows above 65504
        return [
            (rng.standard_normal(n) * 10.0 ** rng.integers(-decades, decades, n)).astype(dtype) for _ in range(world)
        ]
    return [rng.integers(-1000, 1000, n).astype(dtype) for _ in range(world)]


def assert_survivors_name(reps: dict[int, dict[str, Any]], dead: int) -> None:
    """The survivors' reports (by rank) of a peer killed mid-collective: one names ``dead``. Another may name
    a survivor instead, in the one interleaving where ``dead`` had already reached it in the barrier: it then
    waits for the other survivor, which gave up on ``dead`` and exited; that one must have named ``dead``
    first."""
    assert any(rep["ranks"] == [dead] for rep in reps.values()), reps
    for rep in reps.values():
        if rep["ranks"] != [dead]:
            (other,) = rep["ranks"]
            assert other in reps and reps[other]["ranks"] == [dead] and reps[other]["t"] <= rep["t"], reps
