"""A/B micro-benchmark of issue 17's step-time fix: the old and new host paths of the combination
shift + saliency_mix, interleaved in one process, on MNIST-5k ``train_subset: 500`` (seed 17005).

* ``augment``: the Augmenter on 64-row batches (new: batched seeding, one-gather shifts, one integral
  image per batch) vs the per-sample reference kept in tests/data/test_augment_fast_path.py;
* ``refresh``: one saliency refresh of the 500 rows (chunk 256) by the input-only twin (new) vs a twin
  that also computes the weight gradients (old);
* ``steps`` (``--steps N``): a short round-robin run of the ``none`` and combination trainers (new code
  only; the step-time goal itself is judged by benchmarks/augment_quiet.sh, not by this).

Each result is checked bitwise (old == new) before it is timed. One JSON line per result, with the load
average before and after; ``under_load`` when it was above 3::

    GLOG_v=3 nice -n 19 .venv/bin/python benchmarks/augment_ab.py --steps 48
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _util import emit, load1  # noqa: E402

from openmindspore.data.augment import AugmentSource  # noqa: E402
from openmindspore.train import Trainer, config_from_dict  # noqa: E402
from openmindspore.train.building import build_model  # noqa: E402
from openmindspore.train.saliency import gradient_maps, with_input_grad  # noqa: E402

COMBINATION = [{"name": "shift", "max": 2}, {"name": "saliency_mix", "alpha": 1.0, "p": 0.5}]


def _reference():
    spec = importlib.util.spec_from_file_location("augment_ref", ROOT / "tests" / "data" / "test_augment_fast_path.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ref_shift_then_saliency_mix


def _record(name: str, times: dict[str, list[tuple[float, float]]], load0: float) -> dict:
    """Median wall and CPU (this process, all its threads) milliseconds of each side; CPU time is the
    steadier figure under load."""
    load = [load0, load1()]
    rec: dict = {"bench": "augment-ab", "part": name, "reps": len(times["new"])}
    for side, ts in times.items():
        rec[f"{side}_ms"] = 1e3 * float(np.median([t[0] for t in ts]))
        rec[f"{side}_cpu_ms"] = 1e3 * float(np.median([t[1] for t in ts]))
    rec["speedup"] = rec["old_ms"] / rec["new_ms"]
    rec["cpu_speedup"] = rec["old_cpu_ms"] / rec["new_cpu_ms"]
    rec.update({"load": load, "under_load": max(load) > 3})
    emit(rec)
    return rec


def _interleaved(old, new, reps: int) -> dict[str, list[tuple[float, float]]]:
    """``reps`` (wall, CPU) seconds of each, alternating which goes first."""
    out: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    for r in range(reps):
        for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
            fn = old if side == "old" else new
            t, c = time.perf_counter(), time.process_time()
            fn()
            out[side].append((time.perf_counter() - t, time.process_time() - c))
    return out


def augment_part(tr: Trainer, reps: int) -> dict:
    ref = _reference()
    x, y = tr.data.x_train, tr.data.y_train
    src = AugmentSource(x, y, tr.saliency.maps)
    order = np.random.default_rng(0).permutation(len(x))
    batches = [order[b : b + 64] for b in range(0, len(x) - 63, 64)]
    ids = tr.data.sample_ids
    assert tr.augmenter is not None
    aug = tr.augmenter

    def new(i: int = 0):
        rows = batches[i % len(batches)]
        return aug(x[rows], y[rows], rows, ids(rows), 17005, i % 5, src)

    def old(i: int = 0):
        rows = batches[i % len(batches)]
        return ref(x[rows], y[rows], rows, ids(rows), 17005, i % 5, src, 2, 1.0, 0.5, aug.num_classes)

    for i in range(len(batches)):
        a, b = new(i), old(i)
        assert np.array_equal(a.x, b[0]) and np.array_equal(a.soft, b[1]) and np.array_equal(a.offsets, b[2])
    load0 = load1()
    return _record("augment (64-row batch, shift+saliency_mix)", _interleaved(old, new, reps), load0)


def refresh_part(tr: Trainer, reps: int) -> dict:
    x, y = tr.data.x_train, tr.data.y_train
    chunk = tr.cfg.saliency.chunk
    new_twin = tr.saliency_model()
    old_twin = build_model(with_input_grad(tr.cfg), tr.data, tr.task_impl)  # weight gradients on
    own = {p.name: p.asnumpy() for p in new_twin.get_parameters()}
    for p in old_twin.get_parameters():
        p.set_data(type(p)(own[p.name], name=p.name))
    a = gradient_maps(new_twin, tr.loss_cell, x, y, chunk)
    b = gradient_maps(old_twin, tr.loss_cell, x, y, chunk)
    assert np.array_equal(a, b), "the input-only twin's maps differ from the weight-gradient twin's"
    load0 = load1()
    times = _interleaved(
        lambda: gradient_maps(old_twin, tr.loss_cell, x, y, chunk),
        lambda: gradient_maps(new_twin, tr.loss_cell, x, y, chunk),
        reps,
    )
    return _record(f"refresh ({len(x)} rows, chunk {chunk})", times, load0)


def steps_part(steps: int) -> dict:
    trainers = {r: Trainer(_config(ops)) for r, ops in (("none", []), ("combination", COMBINATION))}
    names = list(trainers)
    for _ in range(3):  # compiling steps
        for r in names:
            trainers[r].train_step()
    times: dict[str, list[float]] = {r: [] for r in names}
    load0 = load1()
    for s in range(steps):
        for r in names[s % 2 :] + names[: s % 2]:
            t = time.perf_counter()
            trainers[r].train_step()
            times[r].append(time.perf_counter() - t)
    load = [load0, load1()]
    import openmindspore

    rec = {"bench": "augment-ab", "part": f"steps ({steps} steps after 3, round-robin)"}
    rec["source"] = str(Path(openmindspore.__file__).resolve().parent.parent)
    rec.update({r + "_ms": 1e3 * float(np.mean(v)) for r, v in times.items()})
    rec["ratio"] = rec["combination_ms"] / rec["none_ms"]
    rec["refreshes"] = trainers["combination"].saliency.refreshes
    rec.update({"load": load, "under_load": max(load) > 3})
    emit(rec)
    return rec


def _config(ops: list) -> Any:
    return config_from_dict(
        {"dataset": "mnist5k", "train_subset": 500, "steps": 150, "batch_size": 64, "seed": 17005, "augment": ops}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--augment-reps", type=int, default=200)
    ap.add_argument("--refresh-reps", type=int, default=8)
    ap.add_argument("--steps", type=int, default=0, help="also a short none-vs-combination run (0: none)")
    ap.add_argument(
        "--steps-only",
        action="store_true",
        help="only the --steps run (e.g. with PYTHONPATH at another checkout's src, to compare commits)",
    )
    args = ap.parse_args()
    if not args.steps_only:
        tr = Trainer(_config(COMBINATION))
        tr.train_step()  # the first refresh: real maps
        augment_part(tr, args.augment_reps)
        refresh_part(tr, args.refresh_reps)
    if args.steps:
        steps_part(args.steps)


if __name__ == "__main__":
    main()
