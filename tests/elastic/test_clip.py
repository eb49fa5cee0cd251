"""Gradient clipping in the elastic exchanges: the overlapped update (clips after the last bucket) and the
sharded ZeRO-1 update (per-shard squared norms, one extra all-reduce) are bitwise the full update on the
rank-ordered sum clipped by ``train.clip``; a 2-worker clipped run with a killed worker recovers bitwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elastic.test_comm import _group, _on_ranks
from elastic.test_zero import SHAPES, _grads, _join, _make

from oms_testing import run_oms
from openmindspore.elastic.comm import ShmCollective, reference_allreduce
from openmindspore.train.clip import clip_arrays

MAX_NORM = 2.0  # the test gradients' norms are ~5-5000: every step is clipped


def _clipped_reference(opt_name: str, world: int, steps: int, lr: float = 0.01) -> tuple[list[np.ndarray], dict]:
    from mindspore import Tensor

    params, opt = _make(opt_name)
    at = np.cumsum([0, *(int(np.prod(s)) for s in SHAPES)])
    for step in range(steps):
        summed = reference_allreduce([np.concatenate(_grads(step, r)) for r in range(world)], "sum")
        views = [summed[at[i] : at[i + 1]].reshape(s) for i, s in enumerate(SHAPES)]
        clipped, scale = clip_arrays(views, MAX_NORM)
        assert scale is not None and scale < 0.5
        opt.step(tuple(Tensor(g) for g in clipped), lr)
    return [p.asnumpy().copy() for p in params], {slot: [a.copy() for a in arrs] for slot, arrs in opt.state.items()}


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_clipped_update_is_bitwise_the_full_clipped_update(world, ms_cpu):
    steps, chunk = 3, 4096  # pieces straddle parameters: shards cut parameters anywhere
    ref_params, ref_state = _clipped_reference("adamw", world, steps)
    group = _group()

    def rank(r: int) -> Any:
        params, opt = _make("adamw")
        c, z = _join(group, r, world, opt, chunk)
        try:
            for step in range(steps):
                z.step(step, _grads(step, r), [p.asnumpy().reshape(-1) for p in params], 0.01, MAX_NORM)
            return [p.asnumpy().copy() for p in params], z.read(steps)
        finally:
            c.close()

    for r, res in enumerate(_on_ranks(world, rank)):
        assert isinstance(res, tuple), f"rank {r}: {res!r}"
        params, state = res
        assert all(np.array_equal(a, b) for a, b in zip(params, ref_params)), f"rank {r}: parameters differ"
        for slot, arrs in ref_state.items():
            assert all(np.array_equal(a, b) for a, b in zip(state[slot], arrs)), f"rank {r}: {slot} differs"


def test_overlapped_clipped_update_is_bitwise_the_full_clipped_update(ms_cpu):
    from mindspore import Tensor

    from openmindspore.elastic.exchange import exchange_and_compute

    steps, world = 3, 2
    ref_params, ref_state = _clipped_reference("adam", world, steps)
    group = _group()

    def rank(r: int) -> Any:
        params, opt = _make("adam")
        c = ShmCollective(group, r, world, timeout=30.0, chunk_bytes=4096)  # several buckets
        try:
            for step in range(steps):
                grads = tuple(Tensor(g.reshape(s)) for g, s in zip(_grads(step, r), SHAPES))
                for i, new in enumerate(exchange_and_compute(opt, c, grads, 0.01, MAX_NORM)):
                    opt.commit(i, new)
            return [p.asnumpy().copy() for p in params], opt.state
        finally:
            c.close()

    for r, res in enumerate(_on_ranks(world, rank)):
        assert isinstance(res, tuple), f"rank {r}: {res!r}"
        params, state = res
        assert all(np.array_equal(a, b) for a, b in zip(params, ref_params)), f"rank {r}: parameters differ"
        for slot, arrs in ref_state.items():
            assert all(np.array_equal(a, b) for a, b in zip(state[slot], arrs)), f"rank {r}: {slot} differs"


CONFIG = """\
dataset: digits
model: {name: mlp, hidden: [32]}
optimizer: {name: adamw, lr: 0.01, clip_grad_norm: 0.05}
batch_size: 32
steps: 8
seed: 1
checkpoint_every: 4
"""


@pytest.mark.distributed
@pytest.mark.heavy  # two Ray runs (~1 min idle, ~6 min at load 24); the thread tests above cover the maths
def test_two_workers_clipped_recover_bitwise(tmp_path: Path):
    """Sharded (the default) with worker 1 killed during step 5 == overlapped, uninterrupted: recovery keeps
    the clipped run exact, and both exchanges clip the same global gradient."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    runs = {}
    for name, args in (("killed", ["--kill-worker-at", "5:1"]), ("overlap", ["--overlap", "--bucket-mb", "0.004"])):
        proc = run_oms("train", str(cfg), "--out", str(tmp_path / name), "--workers", "2", "--json", *args, timeout=400)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads(proc.stdout)
    killed, overlap = runs["killed"], runs["overlap"]
    assert killed["elastic"]["shard_optimizer"] and overlap["elastic"]["overlap"]
    assert [r["kind"] for r in killed["recoveries"]] == ["crash"] and killed["recoveries"][0]["steps_lost"] == 0
    assert killed["params_sha256"] == overlap["params_sha256"]
