"""Two variants of ``benchmarks/features.py`` side by side, on the seeds both ran (``--details`` files).

Per (dataset, model, method): seeds in common, success rate, named rate (cluster / exact source), the selected
features' score minus all features' (mean ± s.e. over seeds, and whether within one s.e. of all features' mean,
as in ``features.py``), features kept, the second variant's selected score minus the first's (paired over
seeds), and the seeds where the two variants' outcomes differ (success flipped, swaps made, kept features
dropped by the redundancy check).
One JSON line per case and a markdown table::

    .venv/bin/python benchmarks/features_compare.py A.jsonl B.jsonl --labels main branch --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

os.environ.setdefault("GLOG_v", "3")
sys.path.insert(0, os.path.dirname(__file__))

import features as bench  # noqa: E402


def _by_case(path: str) -> dict[tuple, dict[int, dict[str, Any]]]:
    out: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in bench._load_details(path):
        if r.get("kind") == "seed" and r["dataset"] != "friedman1":
            out.setdefault((r["dataset"], r["model"], r["method"]), {})[r["seed"]] = r
    return out


def compare(a: str, b: str, labels: tuple[str, str]) -> list[dict[str, Any]]:
    ra, rb = _by_case(a), _by_case(b)
    out = []
    for case in sorted(set(ra) & set(rb)):
        seeds = sorted(set(ra[case]) & set(rb[case]))
        if not seeds:
            continue
        row: dict[str, Any] = {"dataset": case[0], "model": case[1], "method": case[2], "seeds": seeds}
        for label, recs in zip(labels, (ra[case], rb[case])):
            (s,) = bench.summarise([recs[k] for k in seeds])
            row[label] = {k: s[k] for k in ("success_rate", "named_rate", "named_exact_rate", "n_kept_mean")} | {
                k: s[k] for k in ("score_all_mean", "score_all_se", "score_diff_mean", "score_diff_se", "within_one_se")
            }
            row[label]["load_avg_1"] = [
                min(recs[k]["load_avg_1"] for k in seeds),
                max(recs[k]["load_avg_1"] for k in seeds),
            ]
        pa, pb = ra[case], rb[case]
        ok = {True: "ok", False: "fail"}
        row["success_flips"] = {
            k: f"{labels[0]} {ok[pa[k]['success']]} -> {labels[1]} {ok[pb[k]['success']]}"
            for k in seeds
            if pa[k]["success"] != pb[k]["success"]
        }
        paired = [pb[k]["score_selected"] - pa[k]["score_selected"] for k in seeds]
        row["selected_b_minus_a"] = [sum(paired) / len(paired), bench._se(paired)]
        row["swaps"] = {k: pb[k].get("swaps", {}) for k in seeds if pb[k].get("swaps")}
        row["pruned"] = {
            k: [p["name"] for p in pb[k].get("pruned", []) if p["made"]]
            for k in seeds
            if any(p["made"] for p in pb[k].get("pruned", []))
        }
        row["same_records_without_swap"] = sum(
            1
            for k in seeds
            if not pb[k].get("swaps")
            and all(pa[k][f] == pb[k][f] for f in ("kept", "proxies", "score_selected", "success"))
        )
        out.append(row)
    return out


def markdown(rows: list[dict[str, Any]], labels: tuple[str, str]) -> str:
    lines = [
        "| dataset | model | seeds | variant | success | named (cluster / exact) | score all | diff ± s.e. "
        f"| within 1 s.e. | kept (mean) | seeds with a swap | seeds with a redundancy drop "
        f"| selected score, {labels[1]} - {labels[0]} "
        "| success changed |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        for i, label in enumerate(labels):
            s = r[label]
            paired = "{:+.3f} ± {:.3f}".format(*r["selected_b_minus_a"])
            flips = ", ".join(f"{k}: {v}" for k, v in r["success_flips"].items()) or "-"
            lines.append(
                f"| {r['dataset']} | {r['model']} | {len(r['seeds'])} | {label} | {bench._pct(s['success_rate'])} "
                f"| {bench._pct(s['named_rate'])} / {bench._pct(s['named_exact_rate'])} "
                f"| {s['score_all_mean']:.3f} ± {s['score_all_se']:.3f} "
                f"| {s['score_diff_mean']:+.3f} ± {s['score_diff_se']:.3f} | {'yes' if s['within_one_se'] else 'no'} "
                f"| {s['n_kept_mean']:.1f} | {len(r['swaps']) if i else '-'} | {len(r['pruned']) if i else '-'} "
                f"| {paired if i else ''} | {flips if i else ''} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("details", nargs=2, metavar="DETAILS", help="two --details files of benchmarks/features.py")
    ap.add_argument("--labels", nargs=2, default=["a", "b"])
    ap.add_argument("--markdown", action="store_true", help="print the side-by-side table at the end")
    args = ap.parse_args(argv)
    labels = (args.labels[0], args.labels[1])
    rows = compare(args.details[0], args.details[1], labels)
    for r in rows:
        print(json.dumps({"benchmark": "features_compare", **r}))
    if args.markdown:
        print(markdown(rows, labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
