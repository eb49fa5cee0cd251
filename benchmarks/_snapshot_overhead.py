"""Snapshot overhead of an elastic run, holder vs ray in one run of the benchmark (``recovery.py --only
snapshot``; issue 20).

Each training run alternates blocks of ``block`` steps without and with snapshots (``oms train
--snapshot-ab``): every block with snapshots is compared with its neighbours without, in the same run, so
the run-to-run spread of a shared 2-core machine (+-15 % between runs of one configuration) cancels; the
run's figure is the median over its blocks. A run with no snapshots at all, laid out the same, is the
A/A control: its "overhead" is the noise floor of the method. Configurations: none, holder and ray x
(every step, auto), interleaved round by round. The across-run figure (a configuration's steps with
snapshots against the control run's steps in the same blocks) is kept beside it. Disk checkpoints are
off during the measurement (the last step only): a checkpoint forces a snapshot whatever
``--snapshot-every`` says, and writing it to disk is not what is measured here.
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

from _util import emit, oms_json

MLP = "{name: mlp, hidden: [4096, 1536]}"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 4) if known else None


def snapshot_overhead(
    tmp: Path, config: Callable[..., Path], steps: int, rounds: int, block: int, stores: tuple[str, ...]
) -> None:
    """One JSON line per configuration (see the module docstring); ``steps`` per run."""
    cfg = config(tmp, steps, model=MLP, checkpoint_every=100_000)
    configs = [("none", "")] + [(store, every) for store in stores for every in ("1", "auto")]
    runs: dict[tuple[str, str], list[dict]] = {c: [] for c in configs}
    for r in range(rounds):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for store, every in order:
            args = ["--snapshot-ab", str(block)]
            args += ["--snapshot-every", "1000000"] if store == "none" else ["--snapshot-every", every]
            args += ["--snapshot-store", "holder" if store == "none" else store]
            out = tmp / f"snap_{store}_{every}_{r}"
            load_before = os.getloadavg()[0]
            s = oms_json("train", str(cfg), "--out", str(out), "--workers", "2", *args)
            s["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            runs[(store, every)].append(s)
            shutil.rmtree(out, ignore_errors=True)
    control = runs[("none", "")]
    for store, every in configs:
        ons = runs[(store, every)]
        ab = [s["snapshot_ab"] for s in ons]
        within = _median([a["overhead_median"] if a else None for a in ab])
        across = [
            a["step_s_on"] / c["snapshot_ab"]["step_s_on"] - 1 if a and c["snapshot_ab"] else None
            for a, c in zip(ab, control)
        ]
        emit(
            {
                "bench": "snapshot_overhead",
                "model": "MLP 784-4096-1536-10 (9.5M params)",
                "workers": 2,
                "steps": steps,
                "block": block,
                "rounds": rounds,
                "snapshot_store": store if store != "none" else None,
                "asked": every or "none (A/A control)",
                "snapshot_every": [s["snapshot_every"] for s in ons] if store != "none" else None,
                "snapshot_cost_s": _median([s["snapshot_cost_s"] for s in ons]),
                "overhead_in_run": within,
                "overhead_in_run_per_round": [a["overhead_median"] if a else None for a in ab],
                "overhead_in_run_stderr": [a["overhead_stderr"] if a else None for a in ab],
                "blocks_per_run": [a["blocks"] if a else None for a in ab],
                "off_early_vs_late": [a["off_early_vs_late"] if a else None for a in ab],
                "step_s_with": [a["step_s_on"] if a else None for a in ab],
                "step_s_without": [a["step_s_off"] if a else None for a in ab],
                "overhead_across_runs": _median(across) if store != "none" else None,
                "overhead_across_runs_per_round": [round(x, 4) if x is not None else None for x in across],
                "within_budget": None if store == "none" or within is None else within <= 0.05,
                "load_avg": [s["load_avg"] for s in ons],
            }
        )
