"""Key-feature augmentation on MNIST-5k: clean / clutter / spurious accuracy, pointing game, step-time ratio.

Protocol (issue 17): the default CNN, batch 64, Adam 1e-3, the same ``--steps`` for every row; training
sets mnist5k with ``train_subset: 500`` and all 4,000; ``--seeds`` (default 17000-17004, never used while
developing) for every row. Per (size, seed) two groups of runs, one trainer per row stepped round-robin
(the rotation shifts every step), so the step times of the rows are measured interleaved in the same run:

* trained on **mnist5k**: clean test accuracy, **mnist5k_clutter** test accuracy, and on the clutter test
  images the pointing game, the saliency mass in the digit's box and the model-randomization check
  (mean Spearman correlation with a re-initialised model's maps), all with ``|d loss / d x|`` maps;
* trained on **mnist5k_spurious**: its test accuracy (test marks random: the shortcut does not pay).

Rows: none, shift, cutout, TrivialAugment, CutMix (the baselines), keep_cutout, saliency_mix (key-feature
ops at the default refresh: ``every: 2`` epochs, gradient maps) and a combination (``--combination``, one of
COMBINATIONS, chosen before the run: ``--pilot`` trains every candidate beside none, TrivialAugment and
saliency_mix on seed 16999, train_subset 500, clean data only). The step-time ratio is
a row's mean step time (augmentation and saliency refreshes included; the first 3 steps, which compile, excluded)
over the ``none`` row's, both groups pooled. ``--vit`` adds one seed of a ViT (PyNative) on all 4,000.

One JSON line per run and per table row; ``--markdown`` writes the "Augmentation" section of
docs/benchmarks.md::

    nice -n 19 .venv/bin/python benchmarks/augment.py --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit, load1  # noqa: E402

from openmindspore.data import load_dataset  # noqa: E402
from openmindspore.train import Trainer, config_from_dict  # noqa: E402
from openmindspore.train.focus import focus_metrics  # noqa: E402

COMBINATIONS: dict[str, list[dict[str, Any]]] = {
    "shift+keep_cutout": [{"name": "shift", "max": 2}, {"name": "keep_cutout", "size": 12}],
    "shift+saliency_mix": [{"name": "shift", "max": 2}, {"name": "saliency_mix", "alpha": 1.0, "p": 0.5}],
    "keep_cutout+saliency_mix": [{"name": "keep_cutout", "size": 12}, {"name": "saliency_mix", "alpha": 1.0, "p": 0.5}],
    "saliency_mix+trivial_augment": [{"name": "saliency_mix", "alpha": 1.0, "p": 0.5}, {"name": "trivial_augment"}],
    "shift+keep_cutout+saliency_mix": [
        {"name": "shift", "max": 2},
        {"name": "keep_cutout", "size": 12},
        {"name": "saliency_mix", "alpha": 1.0, "p": 0.5},
    ],
}
# the "combination" row: ``--combination`` picks one of COMBINATIONS (``--pilot`` compares them on seed 16999)
DEFAULT_COMBINATION = "shift+keep_cutout"
ROWS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "shift": [{"name": "shift", "max": 2}],
    "cutout": [{"name": "cutout", "size": 12}],
    "trivial_augment": [{"name": "trivial_augment"}],
    "cutmix": [{"name": "cutmix", "alpha": 1.0, "p": 0.5}],
    "keep_cutout": [{"name": "keep_cutout", "size": 12}],
    "saliency_mix": [{"name": "saliency_mix", "alpha": 1.0, "p": 0.5}],
    "combination": COMBINATIONS[DEFAULT_COMBINATION],
}
# single ops trained beside the candidates in the pilot, so a combination is compared with its parts
PILOT_REFERENCES = ("none", "trivial_augment", "saliency_mix")


def rows(combination: str) -> dict[str, list[dict[str, Any]]]:
    """The table's rows with the ``combination`` row set to ``COMBINATIONS[combination]``."""
    return {**ROWS, "combination": COMBINATIONS[combination]}


BASELINES = ("shift", "cutout", "trivial_augment", "cutmix")
KEY_FEATURE = ("keep_cutout", "saliency_mix", "combination")
SKIP = 3  # first steps (compilation) left out of the step times


def _config(dataset: str, size: int | None, seed: int, ops: list, steps: int) -> Any:
    cfg: dict[str, Any] = {"dataset": dataset, "steps": steps, "batch_size": 64, "seed": seed, "augment": ops}
    if size is not None:
        cfg["train_subset"] = size
    return cfg


def _group(
    dataset: str, size: int | None, seed: int, rows: dict[str, list], steps: int, model: Any = None
) -> tuple[dict[str, Trainer], dict[str, list[float]]]:
    """Train one trainer per row, round-robin; returns the trainers and each row's step times."""
    trainers = {
        r: Trainer(config_from_dict(_config(dataset, size, seed, ops, steps)), model=model) for r, ops in rows.items()
    }
    names = list(rows)
    times: dict[str, list[float]] = {r: [] for r in names}
    for step in range(steps):
        k = step % len(names)
        for r in names[k:] + names[:k]:
            t0 = time.perf_counter()
            trainers[r].train_step()
            times[r].append(time.perf_counter() - t0)
    return trainers, times


def _clean_runs(size: int | None, seed: int, rows: dict[str, list], steps: int, model: Any = None) -> dict[str, dict]:
    clutter = load_dataset("mnist5k_clutter")
    trainers, times = _group("mnist5k", size, seed, rows, steps, model)
    out = {}
    for r, tr in trainers.items():
        res: dict[str, Any] = {"clean": tr.evaluate("test")["accuracy"], "times": times[r]}
        res["clutter"] = tr.evaluate(x=clutter.x_test, y=clutter.y_test)["accuracy"]
        res.update(focus_metrics(tr, clutter.x_test, clutter.y_test, clutter.meta["test_boxes"]))
        res["refreshes"] = tr.saliency.refreshes if tr.saliency is not None else 0
        out[r] = res
    return out


def _spurious_runs(
    size: int | None, seed: int, rows: dict[str, list], steps: int, model: Any = None
) -> dict[str, dict]:
    trainers, times = _group("mnist5k_spurious", size, seed, rows, steps, model)
    return {r: {"spurious": tr.evaluate("test")["accuracy"], "times": times[r]} for r, tr in trainers.items()}


def measure(args: argparse.Namespace) -> list[dict]:
    records = []
    table = rows(args.combination)
    for size in args.sizes:
        for seed in args.seeds:
            load0 = load1()
            clean = _clean_runs(size, seed, table, args.steps)
            spur = _spurious_runs(size, seed, table, args.steps)
            head = {"bench": "augment", "train_size": size or 4000, "seed": seed, "steps": args.steps}
            records += _emit_rows(head, args.combination, clean, spur, [load0, load1()])
    return records


def _emit_rows(head: dict, combination: str, clean: dict, spur: dict, load: list[float]) -> list[dict]:
    """One record per row of a (size, seed) run: ``head``, the clean run's metrics, the spurious accuracy and
    the mean step time of both groups (compiling steps left out); each emitted as it is made."""
    records = []
    for r in clean:
        rec = {**head, "row": r, "combination": combination}
        rec.update({k: v for k, v in clean[r].items() if k != "times"})
        rec["spurious"] = spur[r]["spurious"]
        rec["step_s"] = float(np.mean(clean[r]["times"][SKIP:] + spur[r]["times"][SKIP:]))
        rec["load"] = load
        emit(rec)
        records.append(rec)
    return records


def pilot(args: argparse.Namespace) -> list[dict]:
    """The ``--candidates`` of COMBINATIONS and the PILOT_REFERENCES rows, trained on mnist5k only (seed 16999,
    train_subset 500): clean and clutter accuracy, pointing game and step time per row."""
    runs = {r: ROWS[r] for r in PILOT_REFERENCES} | {c: COMBINATIONS[c] for c in args.candidates}
    load0 = load1()
    clean = _clean_runs(500, 16999, runs, args.steps)
    records = []
    for r, res in clean.items():
        rec = {"bench": "augment-pilot", "row": r, "train_size": 500, "seed": 16999, "steps": args.steps}
        rec.update({k: res[k] for k in ("clean", "clutter", "pointing_game", "mass_in_box")})
        rec["step_s"] = float(np.mean(res["times"][SKIP:]))
        rec["load"] = [load0, load1()]
        emit(rec)
        records.append(rec)
    return records


class _ViTLogits:
    """A ViT factory (the vit-tiny preset's width/heads/MLP, 28x28 inputs in 7x7 patches) returning logits."""

    def __init__(self, layers: int) -> None:
        self.layers = layers

    def __call__(self, num_classes: int) -> Any:
        from mindspore import nn

        from openmindspore.models.vit import build_vit

        vit = build_vit(
            "vit-tiny-patch16-224",
            image_size=28,
            patch_size=7,
            num_channels=1,
            num_labels=num_classes,
            num_hidden_layers=self.layers,
        )

        class Logits(nn.Cell):
            def __init__(self) -> None:
                super().__init__(auto_prefix=False)
                self.vit = vit

            def construct(self, x: Any) -> Any:
                return self.vit(x)[0]

        return Logits()


def vit(args: argparse.Namespace) -> list[dict]:
    seed = args.seeds[0]
    load0 = load1()
    factory = _ViTLogits(args.vit_layers)
    table = rows(args.combination)
    clean = _clean_runs(None, seed, table, args.vit_steps, factory)
    spur = _spurious_runs(None, seed, table, args.vit_steps, factory)
    head = {"bench": "augment-vit", "train_size": 4000, "seed": seed, "steps": args.vit_steps}
    return _emit_rows(head, args.combination, clean, spur, [load0, load1()])


def _append(path: Path | None, records: list[dict]) -> None:
    """Append ``records`` to the ``--records`` file, one JSON line each (nothing without one)."""
    if path:
        with path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(17000, 17005)))
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 4000], help="train_subset sizes (4000 = all)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument(
        "--combination",
        choices=sorted(COMBINATIONS),
        default=DEFAULT_COMBINATION,
        help="the ops of the 'combination' row (default %(default)s); --pilot compares them",
    )
    ap.add_argument("--pilot", action="store_true", help="only the combination pilot (seed 16999, 500)")
    ap.add_argument(
        "--candidates",
        nargs="+",
        choices=sorted(COMBINATIONS),
        default=sorted(COMBINATIONS),
        help="the combinations the pilot compares (default all)",
    )
    ap.add_argument("--vit", action="store_true", help="also one seed of a ViT (PyNative) on all 4,000")
    ap.add_argument("--vit-only", action="store_true")
    ap.add_argument("--vit-steps", type=int, default=150)
    ap.add_argument("--vit-layers", type=int, default=2)
    ap.add_argument("--records", type=Path, help="append the JSON lines here too (and read them back for tables)")
    ap.add_argument("--markdown", action="store_true", help="write the Augmentation section of docs/benchmarks.md")
    ap.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="measure nothing: write the section from these JSON-lines outputs (non-JSON lines skipped)",
    )
    ap.add_argument("--command", dest="commands", action="append", help="the command(s) shown in the section")
    ap.add_argument("--note", help="a paragraph added to the section (e.g. how the run was sized)")
    ap.add_argument("--started", help="when the measured run started (with --report)")
    args = ap.parse_args()
    if args.report:
        from _augment_report import write_section

        lines = [ln for f in args.report for ln in f.read_text().splitlines() if ln.startswith("{")]
        write_section([json.loads(ln) for ln in lines], args, args.started or time.strftime("%Y-%m-%d %H:%M"))
        return
    if args.pilot:
        _append(args.records, pilot(args))
        return
    started = time.strftime("%Y-%m-%d %H:%M")
    records = [] if args.vit_only else measure(args)
    if args.vit or args.vit_only:
        records += vit(args)
    _append(args.records, records)
    if args.markdown:
        from _augment_report import write_section

        source = [json.loads(line) for line in args.records.read_text().splitlines()] if args.records else records
        write_section(source, args, started)


if __name__ == "__main__":
    main()
