"""Reports: ``effects.json`` (the records), ``report.md`` (table + answer in words) and a forest plot PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["forest_plot", "write_report"]


def forest_plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "", xlabel: str = "effect") -> Path:
    """One horizontal CI bar per row (``label``, ``ate``, ``ci95``); a dashed line at 0. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.0, 0.9 + 0.45 * max(len(rows), 1)))
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        lo, hi = r["ci95"]
        ax.plot([lo, hi], [y, y], color="tab:blue", lw=2)
        ax.plot([r["ate"]], [y], "s", color="tab:blue", ms=6)
    ax.axvline(0.0, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["label"] for r in reversed(rows)])
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| effect | estimator | ATE | 95% CI | n | ESS |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['estimator']} | {r['ate']:+.4f} | [{r['ci95'][0]:+.4f}, "
            f"{r['ci95'][1]:+.4f}] | {r['n']} | {r['ess']:.1f} |"
        )
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    records: Sequence[dict[str, Any]],
    answers: Sequence[str],
    title: str,
    details: dict[str, Any] | None = None,
    json_name: str = "effects.json",
    notes: Sequence[str] = (),
) -> dict[str, str]:
    """Write ``json_name`` (list of records), ``report.md`` and ``forest.png`` into ``out_dir``."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    rows = [{**r, "label": r.get("label") or f"{r['treatment']} ({r['estimator']})"} for r in records]
    js = d / json_name
    js.write_text(
        json.dumps(
            {"records": list(records), "answers": list(answers), "details": details or {}},
            indent=2,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )
    metric = records[0]["metric"] if records else "effect"
    png = forest_plot(rows, d / "forest.png", title=title, xlabel=f"effect on {metric} (95% CI)")
    md = [
        f"# {title}",
        "",
        *[f"**Answer.** {a}" + "\n" for a in answers],
        *[f"**Sensitivity checks.** {x}" + "\n" for x in notes if x],
        _table(rows),
        "",
        f"![forest plot]({png.name})",
        "",
    ]
    if details:
        md += ["## Details", "", "```json", json.dumps(details, indent=2, sort_keys=True, default=str), "```", ""]
    (d / "report.md").write_text("\n".join(md))
    return {"json": str(js), "markdown": str(d / "report.md"), "png": str(png)}
