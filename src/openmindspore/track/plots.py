"""Plots written into a run directory at its end (matplotlib, no display).

Owns no state. ``learning_curve.png``: training loss (and learning rate, when logged) and the validation
metrics against the step, a dashed vertical line at every recovery's failure step. ``recovery_timeline.png``
(elastic runs with recoveries or rescales): one bar per recovery from the failure to the first step after
it, split into its phases (detection, abort, state, forming the group, first step), and per rescale its pause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["learning_curve", "recovery_timeline"]

_PHASES = ("detect_to_recover", "abort", "state", "form_group", "first_step")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(
    metrics: list[dict[str, Any]], evals: list[dict[str, Any]], recoveries: list[dict[str, Any]], out: Path
) -> Path | None:
    """``metrics``: rows of ``metrics.jsonl``; ``evals``: rows of ``eval.jsonl``; returns the file (None: no rows)."""
    rows = [r for r in metrics if "loss" in r and r["loss"] == r["loss"]]
    if not rows and not evals:
        return None
    plt = _pyplot()
    panels = 2 if evals else 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3.2 * panels), sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="loss", color="tab:blue")
    ax.set_ylabel("training loss")
    lr = [r for r in rows if "lr" in r]
    if lr:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in lr], [r["lr"] for r in lr], color="tab:gray", lw=0.8, label="lr")
        ax2.set_ylabel("learning rate")
    if evals:
        vx = axes[1][0]
        for key in sorted({k for r in evals for k in r if k.startswith("val.")}):
            pts = [(r["step"], r[key]) for r in evals if key in r]
            vx.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=key)
        vx.set_ylabel("validation")
        vx.legend(loc="best", fontsize=8)
    for i, rec in enumerate(recoveries):
        for row in axes:
            row[0].axvline(rec["step"], color="tab:red", ls="--", lw=1, label=None if i else "recovery")
    ax.legend(loc="upper right", fontsize=8)
    axes[-1][0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def recovery_timeline(recoveries: list[dict[str, Any]], rescales: list[dict[str, Any]], out: Path) -> Path | None:
    """Per recovery, its phases in seconds (stacked bars), labelled with step, kind and world sizes."""
    if not recoveries and not rescales:
        return None
    plt = _pyplot()
    events = [("recovery", r) for r in recoveries] + [("rescale", r) for r in rescales]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(events) + 2.0))
    colors: dict[str, Any] = {}
    labels = []
    for i, (what, ev) in enumerate(events):
        left = 0.0
        if what == "rescale":
            phases = {"pause": ev.get("pause_s") or 0.0}
        else:
            recorded = {"detect": ev.get("detect_s") or 0.0, **(ev.get("phases_s") or {})}
            phases = {k: recorded[k] for k in ("detect", *_PHASES) if k in recorded}  # in the order they happen
        for name, dt in phases.items():
            new = name not in colors
            color = colors.setdefault(name, f"C{len(colors)}")
            ax.barh(i, dt or 0.0, left=left, color=color, label=name if new else None)
            left += dt or 0.0
        kind = ev.get("kind", what)
        labels.append(f"step {ev['step']} {kind}: {ev.get('world_before')}->{ev.get('world_after')}")
    ax.set_yticks(range(len(events)), labels)
    ax.set_xlabel("seconds from the failure (rescale: from its start)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=6, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
