"""Who answers the queries: a simulated oracle (the dataset's own labels) or files a person fills in.

``--oracle files``: the run writes ``OUT/queries.jsonl`` (one line per open pool id, with the seeds
asking; images also as ``OUT/queries/<id>.png``, tabular rows as ``features``) and stops. The person
answers in a CSV with a header ``id,label`` and re-runs with ``--labels answers.csv``: the answers are
checked whole (every id must be an open query, every label a class index) before any is stored in
``OUT/labels.json``, and the run continues from where it stopped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from openmindspore.active.state import read_json, write_json
from openmindspore.errors import ConfigError
from openmindspore.train.checkpoint import atomic_write

__all__ = ["answers_for", "read_answers", "store_answers", "write_queries", "open_queries"]


def _store(out: Path) -> dict[int, int]:
    path = Path(out) / "labels.json"
    if not path.exists():
        return {}
    data = read_json(path, "label store")
    return {int(k): int(v) for k, v in data.items()}


def answers_for(out: Path | None, oracle: str, ids: Sequence[int], y_pool: np.ndarray) -> list[int] | None:
    """Labels of pool ``ids``: from ``y_pool`` (simulated) or the label store (files; None until every
    one of them is answered)."""
    if oracle == "simulated":
        return [int(y_pool[i]) for i in ids]
    store = _store(Path(out)) if out is not None else {}
    if not all(int(i) in store for i in ids):
        return None
    return [store[int(i)] for i in ids]


def open_queries(out: Path) -> dict[int, list[int]]:
    """The open queries listed in ``OUT/queries.jsonl``: {pool id: seeds asking}."""
    path = Path(out) / "queries.jsonl"
    if not path.exists():
        return {}
    out_q: dict[int, list[int]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            q = json.loads(line)
            out_q[int(q["id"])] = [int(s) for s in q["seeds"]]
    return out_q


def _png(x: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = np.asarray(x, dtype=np.float64)
    lo, hi = float(img.min()), float(img.max())
    img = ((img - lo) / (hi - lo if hi > lo else 1.0) * 255.0).round().astype(np.uint8)
    scale = max(1, 64 // max(img.shape[1:]))
    img = img.repeat(scale, axis=1).repeat(scale, axis=2)
    pil = Image.fromarray(img[0]) if img.shape[0] == 1 else Image.fromarray(np.moveaxis(img[:3], 0, -1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    pil.save(tmp)
    tmp.replace(path)


def write_queries(out: Path, asking: dict[int, list[int]], x_pool: np.ndarray) -> Path:
    """Replace ``OUT/queries.jsonl`` with the open queries ``{pool id: seeds}``; images become PNGs."""
    lines = []
    image = x_pool.ndim == 4
    for i in sorted(asking):
        q: dict = {"id": int(i), "seeds": sorted(asking[i])}
        if image:
            q["image"] = f"queries/{int(i)}.png"
            _png(x_pool[i], Path(out) / q["image"])
        else:
            q["features"] = [round(float(v), 6) for v in np.asarray(x_pool[i]).ravel()]
        lines.append(json.dumps(q, sort_keys=True))
    path = Path(out) / "queries.jsonl"
    atomic_write(path, "".join(ln + "\n" for ln in lines))
    return path


def read_answers(path: str | Path, out: Path, num_classes: int) -> dict[int, int]:
    """Parse and check an answers CSV (``id,label``) against the open queries of ``out``: unknown or
    repeated ids and labels outside 0..num_classes-1 are one :class:`ConfigError` (nothing stored)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--labels", str(path), "an existing CSV file with columns id,label")
    asked = open_queries(out)
    answers: dict[int, int] = {}
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"id", "label"} <= set(reader.fieldnames):
            raise ConfigError("--labels", str(path), "a CSV with a header row id,label", f"got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            try:
                i, lab = int(str(row["id"]).strip()), int(str(row["label"]).strip())
            except (TypeError, ValueError):
                raise ConfigError("--labels", f"{path}:{n}", "integer id and label", f"fix line {n}: {row}") from None
            if i not in asked:
                open_ids = sorted(asked)[:5]
                raise ConfigError(
                    "--labels", f"{path}:{n} id={i}", "an id from queries.jsonl", f"open queries: {open_ids} ..."
                )
            if not 0 <= lab < num_classes:
                raise ConfigError(
                    "--labels", f"{path}:{n} label={lab}", f"a class index in 0..{num_classes - 1}", "fix the label"
                )
            if i in answers and answers[i] != lab:
                raise ConfigError("--labels", f"{path}:{n} id={i}", "one label per id", "remove the duplicate")
            answers[i] = lab
    return answers


def store_answers(out: Path, answers: dict[int, int]) -> None:
    """Add checked answers to ``OUT/labels.json`` (atomically)."""
    store = _store(Path(out))
    store.update(answers)
    write_json(Path(out) / "labels.json", {str(k): v for k, v in sorted(store.items())})
