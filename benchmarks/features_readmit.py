"""Readmission's paired effect: each ``benchmarks/features.py`` record of ``ours`` carries the selection before its
last step (readmission: ``kept_before_readmission``, ``success_before_readmission``, ``score_before_readmission``,
which is what ``readmit=False`` gives on the same fits) beside the final one. Per case: success before -> after
(and, in records from s29 on, the final selection's success with the names given before the readmission, since
the drops are named again after it: ``success_before_renaming``),
features kept, selected-minus-all test score before and after (mean ± s.e. over seeds, and whether within one s.e.
of all features' mean, as in ``features.py``), the paired after-minus-before score, and the seeds where an injected
column came back::

    .venv/bin/python benchmarks/features_readmit.py docs/features_seeds_380-399_readmit.jsonl --markdown

``--step recheck`` (records from s30 on): the same table for the redundancy check run again on the final kept set
(``kept_before_recheck``, ``success_before_recheck``, ``score_before_recheck``; the last column: seeds where it
dropped an injected column)::

    .venv/bin/python benchmarks/features_readmit.py docs/features_seeds_440-459_s30_*.jsonl --step recheck --markdown
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _ms(v: np.ndarray) -> str:
    return f"{v.mean():+.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}" if len(v) > 1 else f"{v.mean():+.3f}"


def _changed(r: dict, step: str) -> list[str]:
    """What the step changed in record ``r``: the features the readmission brought back (``readmission``), or the
    features the second redundancy check dropped (``recheck``)."""
    if step == "readmission":
        return list(r["readmitted"])
    return [o["name"] for o in r["rechecked"] if o["made"]]


def summarise(records: list[dict], step: str = "readmission") -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("kind") == "seed" and r.get("method") == "ours" and f"score_before_{step}" in r:
            groups.setdefault((r["dataset"], r["model"]), []).append(r)
    out = []
    for (ds, model), rs in sorted(groups.items()):
        a = {k: np.array([r[k] for r in rs], dtype=float) for k in ("score_all", "score_selected")}
        before = np.array([r[f"score_before_{step}"] for r in rs], dtype=float) - a["score_all"]
        after = a["score_selected"] - a["score_all"]
        se_all = float(a["score_all"].std(ddof=1) / np.sqrt(len(rs))) if len(rs) > 1 else float("nan")
        out.append(
            {
                "dataset": ds,
                "model": model,
                "seeds": len(rs),
                "success_before": float(np.mean([r[f"success_before_{step}"] for r in rs])),
                "success_after": float(np.mean([r["success"] for r in rs])),
                # the final selection with the names given before the readmission (records from s29 on)
                "success_names_before": float(np.mean([r.get("success_before_renaming", np.nan) for r in rs])),
                "kept_before": float(np.mean([len(r[f"kept_before_{step}"]) for r in rs])),
                "kept_after": float(np.mean([r["n_kept"] for r in rs])),
                "n_features": rs[0]["n_features"],
                "score_all_se": se_all,
                "diff_before": _ms(before),
                "diff_after": _ms(after),
                "within_before": bool(before.mean() >= -se_all),
                "within_after": bool(after.mean() >= -se_all),
                "paired": _ms(after - before),
                "injected_back": [r["seed"] for r in rs if any(n.startswith("injected_") for n in _changed(r, step))],
                "changed": {r["seed"]: _changed(r, step) for r in rs if _changed(r, step)},
            }
        )
    return out


def markdown(rows: list[dict], step: str = "readmission") -> str:
    names_before = step == "readmission"  # the renaming after the readmission (records from s29 on)
    lines = [
        f"| dataset | model | seeds | success before -> after{' (with the names before)' if names_before else ''} "
        "| kept before -> after (of) | s.e. of all "
        "| selected - all, before | after | within 1 s.e., before / after | paired after - before "
        f"| seeds with an injected column {'back' if names_before else 'dropped by the step'} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for s in rows:
        yes = {True: "yes", False: "no"}
        names = f" ({100 * s['success_names_before']:.0f}%)" if names_before else ""
        lines.append(
            f"| {s['dataset']} | {s['model']} | {s['seeds']} | {100 * s['success_before']:.0f}% -> "
            f"{100 * s['success_after']:.0f}%{names} "
            f"| {s['kept_before']:.1f} -> {s['kept_after']:.1f} ({s['n_features']}) "
            f"| {s['score_all_se']:.3f} | {s['diff_before']} | {s['diff_after']} "
            f"| {yes[s['within_before']]} / {yes[s['within_after']]} | {s['paired']} "
            f"| {', '.join(map(str, s['injected_back'])) or 'none'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("details", nargs="+", help="benchmarks/features.py details files")
    ap.add_argument("--markdown", action="store_true", help="a markdown table instead of JSON lines")
    ap.add_argument(
        "--step",
        choices=("readmission", "recheck"),
        default="readmission",
        help="the step compared: the readmission, or the redundancy check run again on the final set (s30 on)",
    )
    args = ap.parse_args(argv)
    records = [json.loads(line) for path in args.details for line in open(path) if line.strip()]
    rows = summarise(records, args.step)
    print(markdown(rows, args.step) if args.markdown else "\n".join(json.dumps(r) for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
