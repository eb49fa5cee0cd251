"""benchmarks/augment.py: the ``--combination`` row's candidates are valid configs, a bad name exits 2 listing the
valid ones, and the report names the combination the records used and shows the pilot that chose it."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

import pytest

from oms_testing import ROOT
from openmindspore.train import config_from_dict

sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("bench_augment", ROOT / "benchmarks" / "augment.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import _augment_report as report  # noqa: E402


@pytest.mark.parametrize("name", sorted(bench.COMBINATIONS))
def test_every_candidate_is_a_valid_config_and_only_changes_the_combination_row(name):
    ops = bench.COMBINATIONS[name]
    cfg = config_from_dict({"dataset": "mnist5k", "augment": ops})
    assert "+".join(op.name for op in cfg.augment) == name
    table = bench.rows(name)
    assert table["combination"] == ops
    assert {r: v for r, v in table.items() if r != "combination"} == {
        r: v for r, v in bench.ROWS.items() if r != "combination"
    }
    assert bench.DEFAULT_COMBINATION in bench.COMBINATIONS
    assert bench.ROWS["combination"] == bench.COMBINATIONS[bench.DEFAULT_COMBINATION]


@pytest.mark.parametrize("flag", ["--combination", "--candidates"])
def test_an_unknown_combination_exits_2_and_lists_the_candidates(flag):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "augment.py"), "--pilot", flag, "mixup+shift"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert flag in proc.stderr and "mixup+shift" in proc.stderr
    for name in bench.COMBINATIONS:
        assert name in proc.stderr


def _records(combination: str | None, pilot: bool) -> list[dict]:
    out = []
    for seed in (1, 2):
        for i, row in enumerate(report.ROWS):
            rec = {"bench": "augment", "row": row, "train_size": 500, "seed": seed, "steps": 10, "load": [1.0, 2.0]}
            v = 0.1 * i + 0.01 * seed
            rec.update(clean=0.8 + v / 10, clutter=0.2 + v, spurious=0.5, pointing_game=0.3 + v)
            rec.update(mass_in_box=0.5, randomization_spearman=0.1, step_s=0.01 * (1 + i / 10))
            if combination is not None:
                rec["combination"] = combination
            out.append(rec)
    if pilot:
        for row, clutter in (("none", 0.1), ("saliency_mix+trivial_augment", 0.4)):
            out.append(
                {"bench": "augment-pilot", "row": row, "train_size": 500, "seed": 16999, "steps": 10}
                | {"clean": 0.9, "clutter": clutter, "pointing_game": 0.5, "mass_in_box": 0.5}
                | {"step_s": 0.02 if row == "none" else 0.03, "load": [1.5, 2.5]}
            )
    return out


def test_the_report_names_the_recorded_combination_and_shows_the_pilot():
    args = argparse.Namespace(commands=["cmd"], note=None)
    text = report.section(_records("saliency_mix+trivial_augment", pilot=True), args, "2026-12-05 11:00")
    assert "the combination (saliency_mix + trivial_augment) was chosen before the evaluation run by the pilot" in text
    assert "**Pilot for the combination row** (seed 16999, train_subset 500, 10 steps" in text
    assert "| saliency_mix+trivial_augment | 0.900 | 0.400 | 0.500 | 0.500 | 1.50 |" in text
    # records written before --combination existed used shift + keep_cutout, without a pilot
    old = report.section(_records(None, pilot=False), args, "2026-12-04 17:46")
    assert "the combination (shift + keep_cutout) was fixed before the run, without a pilot." in old
    assert "Pilot for the combination row" not in old


def test_the_step_time_ratio_is_the_median_of_per_seed_ratios_so_one_stopped_step_moves_one_seed():
    by = report._by(_records("shift+saliency_mix", pilot=False), "augment", 500)
    by["saliency_mix"].append(dict(by["saliency_mix"][0], seed=3, step_s=30.0))  # a process stopped mid-step
    by["none"].append(dict(by["none"][0], seed=3))
    ratios = report._ratios(by)
    assert ratios["none"] == 1.0
    assert ratios["saliency_mix"] == pytest.approx(1.6)  # seeds 1, 2: 0.016 / 0.01; seed 3: 3000x
