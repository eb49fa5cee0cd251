"""The "Augmentation" section of docs/benchmarks.md from benchmarks/augment.py's records: tables (mean +- sd
over seeds), the seed-paired 95% confidence intervals and each goal as met or missed with its figure."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
ROWS = ("none", "shift", "cutout", "trivial_augment", "cutmix", "keep_cutout", "saliency_mix", "combination")
BASELINES = ("shift", "cutout", "trivial_augment", "cutmix")
KEY_FEATURE = ("keep_cutout", "saliency_mix", "combination")
COLS = (
    ("clean", "clean acc."),
    ("clutter", "clutter acc."),
    ("spurious", "spurious acc."),
    ("pointing_game", "pointing game"),
    ("mass_in_box", "mass in box"),
    ("randomization_spearman", "rand. Spearman"),
)


def _by(records: list[dict], bench: str, size: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        if r.get("bench") == bench and r["train_size"] == size:
            out.setdefault(r["row"], []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r["seed"])
    return out


def _values(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows], dtype=np.float64)


def _cell(v: np.ndarray) -> str:
    return f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def paired_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``a - b`` (paired by seed) and its 95% t-interval."""
    d = a - b
    if len(d) < 2:
        return float(d.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _ratios(by: dict[str, list[dict]]) -> dict[str, float]:
    """Per row, the median over seeds of its mean step time over the ``none`` row's of the same record (same
    process, interleaved): a record whose process was stopped (SIGSTOP) during one step moves one seed's
    ratio, not the row's figure."""
    base = {r["seed"]: r["step_s"] for r in by["none"]}
    return {row: float(np.median([r["step_s"] / base[r["seed"]] for r in by[row]])) for row in by}


def table(by: dict[str, list[dict]]) -> list[str]:
    ratios = _ratios(by)
    head = "| row | " + " | ".join(h for _, h in COLS) + " | step-time ratio |"
    lines = [head, "|---|" + "---:|" * (len(COLS) + 1)]
    for row in ROWS:
        if row in by:
            cells = [_cell(_values(by[row], k)) for k, _ in COLS]
            lines.append(f"| {row} | " + " | ".join(cells) + f" | {ratios[row]:.2f} |")
    return lines


def goals(by: dict[str, list[dict]], under_load: bool) -> list[str]:
    mean = {row: float(_values(by[row], "clutter").mean()) for row in by}
    best_base = max(BASELINES, key=lambda r: mean[r])
    best_key = max(KEY_FEATURE, key=lambda r: mean[r])
    best = max(mean, key=lambda r: mean[r])
    gain, lo, hi = paired_ci(_values(by[best_key], "clutter"), _values(by[best_base], "clutter"))
    met = best in KEY_FEATURE and lo > 0
    out = [
        f"- **Clutter: {'met' if met else 'missed'}.** Best row on the clutter set: {best} ({mean[best]:.3f}); "
        f"best key-feature row {best_key} vs best baseline {best_base}: seed-paired gain {gain:+.3f}, "
        f"95% CI [{lo:+.3f}, {hi:+.3f}]."
    ]
    clean = {row: float(_values(by[row], "clean").mean()) for row in by}
    best_clean_base = max(BASELINES, key=lambda r: clean[r])
    gap = clean[best_key] - clean[best_clean_base]
    out.append(
        f"- **Clean accuracy within 0.3 points of the best baseline: {'met' if gap >= -0.003 else 'missed'}.** "
        f"{best_key} {clean[best_key]:.3f} vs {best_clean_base} {clean[best_clean_base]:.3f} ({100 * gap:+.1f} points)."
    )
    ratios = _ratios(by)
    worst = max(("keep_cutout", "saliency_mix"), key=lambda r: ratios[r])
    verdict = "not judged (under load)" if under_load else ("met" if ratios[worst] <= 1.5 else "missed")
    out.append(
        f"- **Step time <= 1.5x no augmentation at the default refresh: {verdict}.** keep_cutout "
        f"{ratios['keep_cutout']:.2f}x, saliency_mix {ratios['saliency_mix']:.2f}x, combination "
        f"{ratios['combination']:.2f}x (TrivialAugment {ratios['trivial_augment']:.2f}x, "
        f"CutMix {ratios['cutmix']:.2f}x)."
    )
    pg_none = _values(by["none"], "pointing_game")
    parts = []
    for row in KEY_FEATURE:
        g, lo2, hi2 = paired_ci(_values(by[row], "pointing_game"), pg_none)
        parts.append(f"{row} {g:+.3f} [{lo2:+.3f}, {hi2:+.3f}]")
    g_best, lo_best, _ = paired_ci(_values(by[best_key], "pointing_game"), pg_none)
    verdict_pg = f"met by {best_key}" if lo_best > 0 else f"missed by {best_key} (gain {g_best:+.3f}, CI includes 0)"
    out.append(
        f"- **Pointing game higher than without augmentation: {verdict_pg}.** none "
        f"{pg_none.mean():.3f}; paired gains (95% CI): " + ", ".join(parts) + "."
    )
    rs = {row: float(_values(by[row], "randomization_spearman").mean()) for row in by}
    out.append(
        f"- Sanity check (Spearman with a re-initialised model's maps < 0.3): "
        f"{'passed' if max(rs.values()) < 0.3 else 'failed'} for every row (largest {max(rs.values()):.3f})."
    )
    sp = {row: float(_values(by[row], "spurious").mean()) for row in by}
    best_sp = max(sp, key=lambda r: sp[r])
    out.append(
        f"- Spurious set (marks 90% class-correlated in training, random in test): none {sp['none']:.3f}, "
        f"best {best_sp} {sp[best_sp]:.3f}, key-feature rows "
        + ", ".join(f"{r} {sp[r]:.3f}" for r in KEY_FEATURE)
        + "."
    )
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def _combination_sentence(records: list[dict]) -> str:
    """Which ops the combination row used (records before ``--combination`` carry no name: shift + keep_cutout)
    and whether a pilot chose it."""
    names = sorted({r.get("combination", "shift+keep_cutout") for r in records if r.get("bench") == "augment"})
    ops = " / ".join(n.replace("+", " + ") for n in names)
    if any(r.get("bench") == "augment-pilot" for r in records):
        return f"the combination ({ops}) was chosen before the evaluation run by the pilot below (seed 16999)."
    return f"the combination ({ops}) was fixed before the run, without a pilot."


def pilot_table(records: list[dict]) -> list[str]:
    """The ``--pilot`` rows (one seed, mnist5k only): clean, clutter, pointing game, mass in box, step-time ratio."""
    rows = [r for r in records if r.get("bench") == "augment-pilot"]
    if not rows:
        return []
    base = next((r["step_s"] for r in rows if r["row"] == "none"), None)
    steps = sorted({r["steps"] for r in rows})
    loads = [v for r in rows for v in r.get("load", [])]
    out = [
        f"**Pilot for the combination row** (seed 16999, train_subset 500, {', '.join(map(str, steps))} steps, "
        f"mnist5k only, load average {min(loads):.1f}-{max(loads):.1f}; one seed: a choice, not a result)",
        "",
        "| row | clean acc. | clutter acc. | pointing game | mass in box | step-time ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['step_s'] / base:.2f}" if base else "-"
        out.append(
            f"| {r['row']} | {r['clean']:.3f} | {r['clutter']:.3f} | {r['pointing_game']:.3f} | "
            f"{r['mass_in_box']:.3f} | {ratio} |"
        )
    return out + [""]


def section(records: list[dict], args: argparse.Namespace, started: str) -> str:
    loads = [v for r in records for v in r.get("load", [])]
    lo, hi = (min(loads), max(loads)) if loads else (0.0, 0.0)
    under_load = hi > 3
    sizes = sorted({r["train_size"] for r in records if r.get("bench") == "augment"})
    seeds = sorted({r["seed"] for r in records if r.get("bench") == "augment"})
    steps = sorted({r["steps"] for r in records if r.get("bench") == "augment"})
    out = [
        "## Augmentation",
        "",
        "```",
        *(
            args.commands
            or ["nice -n 19 .venv/bin/python benchmarks/augment.py --vit --records augment.jsonl --markdown"]
        ),
        "```",
        "",
        f"Key-feature augmentation (see [augment.md](augment.md)) on MNIST-5k with the default CNN, batch 64, "
        f"Adam 1e-3, **{', '.join(map(str, steps))} steps for every row**, seeds {', '.join(map(str, seeds))} "
        f"(never used while developing), training sets `train_subset` "
        + " and ".join("all 4,000" if s == 4000 else str(s) for s in sizes)
        + f". Measured {started} at commit {_commit()} on the shared {os.cpu_count()}-core machine, load average "
        f"{lo:.1f}-{hi:.1f}"
        + (" (**under load**: the step-time ratios are not used for the step-time goal)" if under_load else "")
        + ". Clean = mnist5k test; clutter = mnist5k_clutter test (digits shifted +-4 px among four 8x8 "
        "fragments of other digits) of the same model; spurious = mnist5k_spurious test of a model trained on "
        "mnist5k_spurious with the same row; pointing game / mass in box / randomization Spearman on the clutter "
        "test images with |d loss / d x| maps. Step-time ratio: median over seeds of the row's mean step time "
        "(augmentation and saliency refreshes included) over the `none` row's in the same process (rows stepped "
        "round-robin). Key-feature "
        "rows use the default refresh (`saliency: {every: 2}`); " + _combination_sentence(records),
        "",
    ]
    if args.note:
        out += [args.note, ""]
    for size in sizes:
        by = _by(records, "augment", size)
        seeds_here = ", ".join(str(r["seed"]) for r in by["none"])
        title = f"train_subset {size}" if size != 4000 else "all 4,000 training images"
        out += [f"**{title}** (seeds {seeds_here})", ""]
        out += table(by) + [""] + goals(by, under_load) + [""]
    out += pilot_table(records)
    vit_sizes = sorted({r["train_size"] for r in records if r.get("bench") == "augment-vit"})
    for size in vit_sizes:
        by = _by(records, "augment-vit", size)
        seed = by["none"][0]["seed"]
        out += [f"**ViT (PyNative), one seed ({seed}), all 4,000**", ""] + table(by) + [""]
    return "\n".join(out).rstrip() + "\n"


def write_section(records: list[dict[str, Any]], args: argparse.Namespace, started: str) -> None:
    text = DOC.read_text()
    new = section(records, args, started)
    m = re.search(r"^## Augmentation\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    text = (
        text[: m.start()] + new + ("\n" + text[m.end() :] if m.end() < len(text) else "")
        if m
        else text.rstrip() + "\n\n" + new
    )
    DOC.write_text(text)
    print(new)
