"""Reports of active-learning runs: ``summary.json``, ``curve.jsonl``, ``curve.png``, ``reliability.png``
and a few lines of text. Several runs (e.g. one per strategy) overlay on one ``curve.png``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.active.calibration import binned
from openmindspore.active.state import write_json
from openmindspore.active.summary import load_states, summarize
from openmindspore.train.checkpoint import atomic_write

__all__ = ["write_run_files", "write_report", "text"]


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def text(s: dict[str, Any]) -> str:
    """A few human lines about one summary."""
    c = s["config"]
    lines = [
        f"active {s['out']}: {c['dataset']} {c['model']} {c['strategy']}, {len(s['seeds'])} seed(s), {s['status']}",
        f"full-pool accuracy {_fmt(s['full_pool_accuracy'])}; labels to 95% of it: "
        f"{_fmt(s['labels_to_95pct_full'], 'd')}, to 99%: {_fmt(s['labels_to_99pct_full'], 'd')}",
        f"ended at {_fmt(s['labels_at_stop'], 'd')} labels (median; stop={c['stop']}), "
        f"test accuracy {_fmt(s['accuracy_at_stop'])}",
    ]
    a = s["abstention"]
    if a:
        n, k = len(a["certified"]), sum(bool(x) for x in a["certified"])
        more = [m for m in a["more_labels_needed"] if m]
        lines.append(
            f"abstention at {a['target']:.0%} ({a['method']}, delta={a['delta']}): certified in {k}/{n} seed(s), "
            f"mean coverage {a['mean_coverage']:.3f}, target met on test in {a['share_seeds_meeting_target']:.0%}"
            + (f"; needs ~{int(np.median(more))} more labels where not certified" if more else "")
        )
        lines.append(f"ECE {a['ece_before']:.3f} -> {a['ece_after']:.3f} after temperature scaling")
    return "\n".join(lines)


def _plot_curves(summaries: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summaries:
        c = s["curve"]
        n, m, se = np.array(c["labels"]), np.array(c["accuracy_mean"]), np.array(c["accuracy_se"])
        label = s["config"]["strategy"] if len(summaries) > 1 else f"{s['config']['strategy']} (seed mean)"
        ax.plot(n, m, label=label)
        ax.fill_between(n, m - se, m + se, alpha=0.2)
    full = summaries[0]["full_pool_accuracy"]
    if np.isfinite(full):
        for share, style in ((1.0, "-"), (0.99, "--"), (0.95, ":")):
            ax.axhline(share * full, color="gray", ls=style, lw=0.8, label=f"{share:.0%} of full pool")
    c0 = summaries[0]["config"]
    ax.set(xlabel="labels", ylabel="test accuracy", title=f"{c0['dataset']} + {c0['model']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, states = load_states(out)
    finals = [s.final for s in states if s.final]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    if finals:
        y = np.concatenate([f["y"] for f in finals])
        pred = np.concatenate([f["pred"] for f in finals])
        for key, name in (("conf_raw", "before"), ("conf", "after temperature scaling")):
            r = binned(np.concatenate([f[key] for f in finals]), pred == y)
            ax.plot(r["confidence"], r["accuracy"], marker="o", label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", title="reliability (final models, test split)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_run_files(out: Path) -> dict[str, Any]:
    """Refresh ``curve.jsonl``, ``summary.json``, ``curve.png`` and ``reliability.png`` in ``out``."""
    out = Path(out)
    _, states = load_states(out)
    rows = [r for s in sorted(states, key=lambda s: s.seed) for r in s.rows]
    atomic_write(out / "curve.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    s = summarize(out)
    write_json(out / "summary.json", s)
    if rows:
        _plot_curves([s], out / "curve.png")
        _plot_reliability(out, out / "reliability.png")
    return s


def write_report(dirs: Sequence[str | Path], report_out: str | Path | None = None) -> dict[str, Any]:
    """Refresh every run's files; with several runs also overlay their curves in ``report_out``."""
    summaries = [write_run_files(Path(d)) for d in dirs]
    dest = Path(report_out) if report_out else Path(dirs[0])
    files = [str(Path(d) / n) for d in dirs for n in ("summary.json", "curve.png", "reliability.png")]
    if len(summaries) > 1 or report_out:
        dest.mkdir(parents=True, exist_ok=True)
        _plot_curves(summaries, dest / "curve.png")
        files.append(str(dest / "curve.png"))
    return {
        "summaries": summaries,
        "files": sorted(set(files)),
        "text": "\n\n".join(text(s) for s in summaries),
    }
