"""What ``oms train --resume DIR`` continues from: the newest verified snapshot, else the newest checkpoint.

Owns no state. Looks, newest first, at the snapshots the run's holder still holds in shared memory (it
outlives a driver that was killed), the one it spilled to the run directory, and the disk checkpoints;
every snapshot is checked against its SHA-256 before it is used. A holder that is gone (killed with the
driver) leaves shared-memory files behind: they are removed here, and the run resumes from disk.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from openmindspore.elastic.store.blob import read_state
from openmindspore.elastic.store.holder import find_holder, read_info, remove_shm

if TYPE_CHECKING:
    from openmindspore.train.checkpoint import RunDir
    from openmindspore.train.state import TrainState

__all__ = ["ResumePoint", "choose_resume", "last_logged_step"]


@dataclass
class ResumePoint:
    """The state a resumed run starts from, where it came from, and the steps it redoes."""

    state: TrainState
    source: Literal["snapshot", "checkpoint"]
    where: str  # "holder" (shared memory), "spilled" (the holder's copy on disk), "yrds", "checkpoint"
    steps_lost: int
    message: str

    @property
    def from_step(self) -> int:
        return self.state.step

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "from_step": self.from_step, "steps_lost": self.steps_lost, "store": self.where}


def last_logged_step(run_dir: Path) -> int:
    """The last step the run logged to ``metrics.jsonl`` (0 when none)."""
    p = run_dir / "metrics.jsonl"
    if not p.is_file():
        return 0
    with open(p, "rb") as f:
        f.seek(max(0, p.stat().st_size - 4096))
        lines = f.read().splitlines()
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


Loader = Callable[[], "TrainState | None"]


def _holder_candidates(run_dir: Path, notes: list[str]) -> list[tuple[int, str, Loader]]:
    client = find_holder(run_dir)
    if client is None:
        info = read_info(run_dir)
        if info is not None:
            removed = remove_shm(run_dir)
            (run_dir / "holder.json").unlink(missing_ok=True)
            notes.append(
                f"the snapshot holder (pid {info.get('pid')}) is gone, its in-memory snapshots with it"
                + (f" ({removed} shared-memory file(s) removed)" if removed else "")
            )
        return []
    held = client.request("list").get("entries", {})
    notes.append(f"snapshot holder pid {client.pid} holds step(s) {sorted(int(s) for s in held) or 'none'}")
    return [
        (int(s), "holder", lambda e=e: read_state(e["path"], e["sha256"]))  # type: ignore[misc]
        for s, e in held.items()
    ]


def _spilled_candidates(run_dir: Path) -> list[tuple[int, str, Loader]]:
    out: list[tuple[int, str, Loader]] = []
    for manifest in (run_dir / "snapshots").glob("step_*.json"):
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        snap = manifest.with_suffix(".snap")
        out.append((int(m["step"]), "spilled", lambda snap=snap, sha=m["sha256"]: read_state(snap, sha)))  # type: ignore[misc]
    return out


def choose_resume(run: RunDir, say: Callable[[str], None] | None = None, store: str = "holder") -> ResumePoint:
    """The newest verified state of ``run`` (see the module docstring; ``store``: the run's snapshot store,
    ``yrds`` is asked too); says which it used (stderr)."""
    notes: list[str] = []
    candidates = _holder_candidates(run.path, notes) + _spilled_candidates(run.path)
    name = run.latest_name()
    ckpt_step = int(name.split("_")[1]) if name else -1
    if name:
        candidates.append((ckpt_step, "checkpoint", run.load_latest))
    last = last_logged_step(run.path)
    if store == "yrds":
        from openmindspore.elastic.store.yrds import candidates as yrds_candidates

        candidates += yrds_candidates(run.path, ckpt_step, last + 1)
    for step, where, load in sorted(candidates, key=lambda c: (c[0], c[1] != "checkpoint"), reverse=True):
        state = load()
        if state is None or state.step != step:
            notes.append(f"{where} snapshot of step {step} failed its SHA-256 check; skipped")
            continue
        lost = max(0, last - step)
        if where == "checkpoint":
            what = f"the disk checkpoint of step {step}"
        else:
            kind = {"holder": "in-memory", "spilled": "spilled", "yrds": "openYuanrong data-system"}[where]
            what = f"the {kind} snapshot of step {step} (SHA-256 verified)"
        more = f"; newest disk checkpoint: step {ckpt_step}" if where != "checkpoint" and name else ""
        msg = f"resuming from {what}{more}; last step logged: {last}, {lost} step(s) lost"
        if notes:
            msg += " (" + "; ".join(notes) + ")"
        (say or (lambda m: print(f"[resume] {m}", file=sys.stderr, flush=True)))(msg)
        source: Literal["snapshot", "checkpoint"] = "checkpoint" if where == "checkpoint" else "snapshot"
        return ResumePoint(state, source, where, lost, msg)
    run.load_latest()  # no checkpoint at all: its error says what to do
    raise AssertionError("unreachable")
