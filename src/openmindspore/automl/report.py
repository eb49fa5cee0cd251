"""Reports of finished (or running) searches: best-so-far curves (PNG) and a summary (JSON + text)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.automl.prior import prior_summary
from openmindspore.automl.records import repeat_fields, repeats_note
from openmindspore.automl.search import load_trials

__all__ = ["summarize", "best_so_far", "write_report"]


def best_so_far(scores: Sequence[float | None]) -> np.ndarray:
    """Running maximum of the validation score (failed trials = NaN, carried over)."""
    out, cur = np.full(len(scores), np.nan), -np.inf
    for i, s in enumerate(scores):
        if s is not None and np.isfinite(s):
            cur = max(cur, s)
        out[i] = cur if np.isfinite(cur) else np.nan
    return out


def summarize(out_dir: str | Path) -> dict[str, Any]:
    """Summary of one search directory: configuration, counts, the best trial and its curve."""
    config, trials = load_trials(out_dir)
    ok = [t for t in trials if t.ok]
    best = max(ok, key=lambda t: (t.score, -t.trial)) if ok else None
    curve = best_so_far([t.score if t.ok else None for t in trials])
    return {
        "dir": str(out_dir),
        "config": config,
        "trials": len(trials),
        "ok": len(ok),
        "failed": len(trials) - len(ok),
        "total_duration_s": round(sum(t.duration_s for t in trials), 3),
        "best": None
        if best is None
        else {
            "trial": best.trial,
            "score": best.score,
            **repeat_fields(trials, best.spec),
            "metrics": best.metrics,
            "spec": best.spec,
        },
        "best_so_far": [None if np.isnan(v) else float(v) for v in curve],
        "errors": sorted({t.error for t in trials if t.error})[:10],
        "prior": prior_summary(config, trials),
    }


def _text(s: dict[str, Any]) -> str:
    c = s["config"]
    lines = [
        f"search {s['dir']}: space={c['space']} dataset={c['dataset']} strategy={c['strategy']} seed={c['seed']}",
        f"trials: {s['trials']} ({s['ok']} ok, {s['failed']} failed), evaluation time {s['total_duration_s']:.1f} s",
    ]
    if s["best"]:
        b = s["best"]
        note = repeats_note(b["evaluations"], b["mean_score"])
        lines.append(
            f"best: trial {b['trial']} val {c['objective']}={b['score']:.4f}{note} "
            f"test={json.dumps(b['metrics'].get('test', {}), sort_keys=True)}"
        )
        lines.append("spec: " + json.dumps(b["spec"]))
    if s.get("prior"):
        lines.append(s["prior"]["text"])
    for e in s["errors"]:
        lines.append(f"error seen: {e}")
    return "\n".join(lines)


def write_report(dirs: Sequence[str | Path], dest: str | Path | None = None) -> dict[str, Any]:
    """Write ``best_so_far.png``, ``summary.json`` and ``summary.txt`` into ``dest`` (default: the
    first directory). Several directories are overlaid on one plot (e.g. one per strategy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sums = [summarize(d) for d in dirs]
    dest = Path(dest or dirs[0])
    dest.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in sums:
        y = np.array([np.nan if v is None else v for v in s["best_so_far"]])
        c = s["config"]
        ax.plot(np.arange(1, len(y) + 1), y, label=f"{c['strategy']} ({Path(s['dir']).name})")
    objective = sums[0]["config"]["objective"]
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best validation {objective} so far")
    ax.set_title(f"{sums[0]['config']['space']} on {sums[0]['config']['dataset']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = dest / "best_so_far.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    (dest / "summary.json").write_text(json.dumps(sums if len(sums) > 1 else sums[0], indent=2, default=str) + "\n")
    text = "\n\n".join(_text(s) for s in sums)
    out = {"png": str(png), "summary_json": str(dest / "summary.json"), "summary_txt": str(dest / "summary.txt")}
    first = sums[0]
    if first["config"]["space"] == "cnn" and first["best"]:
        out["train_config"] = str(_write_train_config(first, dest / "best_train.yaml"))
        text += f"\ntrain the best CNN: oms train {out['train_config']}"
    (dest / "summary.txt").write_text(text + "\n")
    return {**out, "text": text, "summaries": sums}


def _write_train_config(summary: dict[str, Any], path: Path) -> Path:
    """An ``oms train`` YAML for the best CNN, with the training budget the search used."""
    import yaml

    from openmindspore.automl.spaces.cnn import DEFAULT_TRAIN

    c = summary["config"]
    o = {**DEFAULT_TRAIN, **{k: v for k, v in c.get("space_options", {}).items() if k in DEFAULT_TRAIN}}
    cfg = {
        "dataset": c["dataset"],
        "model": {"name": "cnn", "layers": summary["best"]["spec"]},
        "optimizer": {"name": o["optimizer"], "lr": float(o["lr"])},
        "batch_size": int(o["batch_size"]),
        "steps": int(o["steps"]),
        "seed": 0,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
